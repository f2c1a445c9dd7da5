//! CPU decoders.
//!
//! One module per format, named as its kernel file in `cuda/` (`q4_k.rs` beside
//! `q4_k.cu`). Each module implements [`Format`]: a scalar decoder of one block,
//! written from the format's specification and doing ggml's arithmetic in ggml's
//! order, so that its f32 output is bit-identical to ggml's `dequantize_row_*`.
//! That scalar code is the reference everything else is checked against; the
//! fast path ([`dequantize`]) runs SIMD kernels ([`fast`], chosen at run time,
//! bit-identical to the reference) or, for types without one, the same scalar
//! decoders, over threads.

#![allow(non_camel_case_types)]

use half::{bf16, f16};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::types::{GgmlType, OutType};

pub use fast::Level;

pub mod fast;
mod iq1_m;
mod iq1_s;
mod iq2_s;
mod iq2_xs;
mod iq2_xxs;
mod iq3_s;
mod iq3_xxs;
mod iq4_nl;
mod iq4_xs;
mod k_common;
mod mxfp4;
mod nvfp4;
mod plain;
mod q1_0;
mod q2_0;
mod q2_k;
mod q3_k;
mod q4_0;
mod q4_1;
mod q4_k;
mod q5_0;
mod q5_1;
mod q5_k;
mod q6_k;
mod q8_0;
mod tq1_0;
mod tq2_0;

/// The largest block of any format, in elements.
pub const MAX_QK: usize = 256;

/// A block format: its layout (a `#[repr(C)]` struct from `cuda/blocks.h`) and
/// its scalar decoder.
pub trait Format {
    const TYPE: GgmlType;
    /// The block layout. Every field is an integer, so any bytes are a valid block.
    type Block: Pod;
    /// Writes the block's `TYPE.block_elems()` values to `y`, as ggml computes them.
    fn decode(b: &Self::Block, y: &mut [f32]);
}

/// Plain-old-data: a `Copy` type for which every bit pattern is a valid value.
///
/// # Safety
/// Implement only for types made of integers (and arrays of them) with no padding.
pub unsafe trait Pod: Copy {}

macro_rules! pod {
    ($($t:ty),* $(,)?) => { $( unsafe impl Pod for $t {} )* };
}
pod!(u16, u32);
use crate::blocks::*;
pod!(
    block_q4_0,
    block_q4_1,
    block_q5_0,
    block_q5_1,
    block_q8_0,
    block_q1_0,
    block_q2_0,
    block_q2_K,
    block_q3_K,
    block_q4_K,
    block_q5_K,
    block_q6_K,
    block_iq2_xxs,
    block_iq2_xs,
    block_iq2_s,
    block_iq3_xxs,
    block_iq3_s,
    block_iq1_s,
    block_iq1_m,
    block_iq4_nl,
    block_iq4_xs,
    block_tq1_0,
    block_tq2_0,
    block_mxfp4,
    block_nvfp4,
);

/// Reads a block from bytes at any alignment (mapped files need not align them).
#[inline(always)]
pub fn read_block<B: Pod>(bytes: &[u8]) -> B {
    assert!(bytes.len() >= std::mem::size_of::<B>());
    // SAFETY: the length is checked above, B is Pod, and the read is unaligned.
    unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<B>()) }
}

/// IEEE half bits to f32, exactly.
#[inline(always)]
pub fn f16_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// An output element type: f32, or f32 rounded to nearest even into f16 or bf16.
pub trait OutElem: Copy + Send + Sync + Default + 'static {
    const OUT: OutType;
    fn from_f32(v: f32) -> Self;
    /// Converts a run of values. The default is the scalar conversion; the
    /// half-precision types use the `half` crate's slice conversions.
    #[inline(always)]
    fn convert(src: &[f32], dst: &mut [Self]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = Self::from_f32(s);
        }
    }
}

impl OutElem for f32 {
    const OUT: OutType = OutType::F32;
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn convert(src: &[f32], dst: &mut [Self]) {
        dst.copy_from_slice(&src[..dst.len()]);
    }
}

impl OutElem for f16 {
    const OUT: OutType = OutType::F16;
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
}

impl OutElem for bf16 {
    const OUT: OutType = OutType::BF16;
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
}

/// Decodes whole blocks of `F` from `src` into `out`, one block at a time.
/// `src.len()` and `out.len()` must agree (checked by the public entry points).
fn decode_blocks<F: Format, O: OutElem>(src: &[u8], out: &mut [O]) {
    let qk = F::TYPE.block_elems();
    let bb = std::mem::size_of::<F::Block>();
    let mut buf = [0f32; MAX_QK];
    for (blk, y) in src.chunks_exact(bb).zip(out.chunks_exact_mut(qk)) {
        F::decode(&read_block::<F::Block>(blk), &mut buf[..qk]);
        O::convert(&buf[..qk], y);
    }
}

type DecodeFn<O> = fn(&[u8], &mut [O]);

macro_rules! formats {
    ($($ty:ident => $module:ident :: $fmt:ident),* $(,)?) => {
        /// The scalar decoder of a type, or `None` where ggml has none.
        fn decoder<O: OutElem>(ty: GgmlType) -> Option<DecodeFn<O>> {
            match ty {
                $( GgmlType::$ty => Some(decode_blocks::<$module::$fmt, O>), )*
                _ => None,
            }
        }

        #[cfg(test)]
        const FORMAT_TYPES: &[GgmlType] = &[$( <$module::$fmt as Format>::TYPE, )*];
    };
}

formats! {
    F32 => plain::F32,
    F16 => plain::F16,
    BF16 => plain::BF16,
    Q4_0 => q4_0::Q4_0,
    Q4_1 => q4_1::Q4_1,
    Q5_0 => q5_0::Q5_0,
    Q5_1 => q5_1::Q5_1,
    Q8_0 => q8_0::Q8_0,
    Q1_0 => q1_0::Q1_0,
    Q2_0 => q2_0::Q2_0,
    Q2_K => q2_k::Q2_K,
    Q3_K => q3_k::Q3_K,
    Q4_K => q4_k::Q4_K,
    Q5_K => q5_k::Q5_K,
    Q6_K => q6_k::Q6_K,
    IQ2_XXS => iq2_xxs::IQ2_XXS,
    IQ2_XS => iq2_xs::IQ2_XS,
    IQ2_S => iq2_s::IQ2_S,
    IQ3_XXS => iq3_xxs::IQ3_XXS,
    IQ3_S => iq3_s::IQ3_S,
    IQ1_S => iq1_s::IQ1_S,
    IQ1_M => iq1_m::IQ1_M,
    IQ4_NL => iq4_nl::IQ4_NL,
    IQ4_XS => iq4_xs::IQ4_XS,
    TQ1_0 => tq1_0::TQ1_0,
    TQ2_0 => tq2_0::TQ2_0,
    MXFP4 => mxfp4::MXFP4,
    NVFP4 => nvfp4::NVFP4,
}

/// Checks that `src` holds whole blocks of `ty` and `out` has room for exactly
/// their elements; returns the element count.
pub fn check_lengths(ty: GgmlType, src_len: usize, out_len: usize) -> Result<usize> {
    if !ty.is_dequantizable() {
        return Err(Error::Unsupported { tensor: None, ty });
    }
    let (qk, bb) = (ty.block_elems(), ty.block_bytes());
    if !src_len.is_multiple_of(bb) {
        return Err(Error::Length(format!(
            "{src_len} bytes is not a whole number of {ty} blocks ({bb} bytes each)"
        )));
    }
    let n = src_len / bb * qk;
    if out_len != n {
        return Err(Error::Length(format!(
            "{src_len} bytes of {ty} decode to {n} elements, but the output holds {out_len}"
        )));
    }
    Ok(n)
}

/// The scalar reference: one thread, one block at a time.
pub fn dequantize_reference<O: OutElem>(ty: GgmlType, src: &[u8], out: &mut [O]) -> Result<()> {
    check_lengths(ty, src.len(), out.len())?;
    let f = decoder::<O>(ty).ok_or(Error::Unsupported { tensor: None, ty })?;
    f(src, out);
    Ok(())
}

/// Elements per parallel task: large enough to amortize scheduling, small
/// enough to balance across cores and stay in cache.
const CHUNK_ELEMS: usize = 1 << 16;

/// The fast path: the best SIMD kernels this CPU runs ([`Level::best`]), or the
/// scalar decoders for types without one, over all of rayon's threads. Large
/// outputs are written with non-temporal stores.
pub fn dequantize<O: OutElem>(ty: GgmlType, src: &[u8], out: &mut [O]) -> Result<()> {
    let streaming = std::mem::size_of_val(out) >= fast::STREAM_MIN_BYTES;
    dequantize_with(Level::best(), streaming, ty, src, out)
}

/// [`dequantize`] at a chosen instruction-set level (an error where this CPU
/// lacks it), writing through non-temporal stores or not: for tests and
/// benchmarks. Every level gives the same bits.
pub fn dequantize_with<O: OutElem>(
    level: Level,
    streaming: bool,
    ty: GgmlType,
    src: &[u8],
    out: &mut [O],
) -> Result<()> {
    check_lengths(ty, src.len(), out.len())?;
    if !level.is_available() {
        return Err(Error::Invalid(format!(
            "this CPU cannot run the {} kernels",
            level.name()
        )));
    }
    let scalar = decoder::<O>(ty).ok_or(Error::Unsupported { tensor: None, ty })?;
    let plan = fast::plan(ty, level, streaming, out.as_ptr(), scalar);
    let blocks_per_chunk = (CHUNK_ELEMS / ty.block_elems()).max(1);
    let (qk, bb) = (ty.block_elems(), ty.block_bytes());
    out.par_chunks_mut(blocks_per_chunk * qk)
        .zip(src.par_chunks(blocks_per_chunk * bb))
        .for_each(|(y, x)| fast::run(level, plan, ty, x, y));
    Ok(())
}

/// [`dequantize`] into a new vector.
pub fn dequantize_to_vec<O: OutElem>(ty: GgmlType, src: &[u8]) -> Result<Vec<O>> {
    let bb = ty.block_bytes();
    if !src.len().is_multiple_of(bb) {
        return Err(Error::Length(format!(
            "{} bytes is not a whole number of {ty} blocks ({bb} bytes each)",
            src.len()
        )));
    }
    let mut out = vec![O::default(); src.len() / bb * ty.block_elems()];
    dequantize(ty, src, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dequantizable_type_has_a_decoder_and_layout_size() {
        let listed: Vec<_> = GgmlType::dequantizable().collect();
        assert_eq!(FORMAT_TYPES.len(), listed.len());
        for ty in listed {
            assert!(FORMAT_TYPES.contains(&ty), "{ty} has no decoder");
            assert!(decoder::<f32>(ty).is_some());
        }
    }

    #[test]
    fn undecodable_types_are_errors_not_zeros() {
        for ty in [GgmlType::Q8_1, GgmlType::Q8_K, GgmlType::I8, GgmlType::F64] {
            let src = vec![0u8; ty.block_bytes()];
            let mut out = vec![1.0f32; ty.block_elems()];
            let err = dequantize(ty, &src, &mut out).unwrap_err();
            assert!(err.to_string().contains(ty.name()), "{err}");
            assert!(out.iter().all(|&v| v == 1.0), "output must be untouched");
        }
    }

    #[test]
    fn lengths_are_checked() {
        let mut out = vec![0f32; 32];
        assert!(dequantize(GgmlType::Q4_0, &[0u8; 17], &mut out).is_err());
        assert!(dequantize(GgmlType::Q4_0, &[0u8; 36], &mut out).is_err());
        assert!(dequantize(GgmlType::Q4_0, &[0u8; 18], &mut out).is_ok());
    }
}
