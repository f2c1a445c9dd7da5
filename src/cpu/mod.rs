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

use half::f16;
use rayon::prelude::*;

use crate::error::{Error, Result};
pub use crate::out::check_lengths;
pub use crate::out::OutElem;
use crate::types::{GgmlType, OutType};

pub use fast::Level;

pub mod fast;
mod k_common;

/// The format modules, one per file of the list (`src/formats.rs`), and the
/// scalar decoder of every listed type.
macro_rules! format_modules {
    ($( $file:ident { $( $ty:ident => $name:ident : $parts:literal $(/ $tail:ident)? ),+ } )*) => {
        $( mod $file; )*

        /// The scalar decoder of a type, or `None` where ggml has none.
        fn decoder<O: OutElem>(ty: GgmlType) -> Option<DecodeFn<O>> {
            match ty {
                $( $( GgmlType::$ty => Some(decode_blocks::<$file::$ty, O>), )+ )*
                _ => None,
            }
        }
    };
}
crate::for_each_format!(format_modules);

/// The largest block of any format, in elements.
pub const MAX_QK: usize = 256;

/// A block format: its layout (a `#[repr(C)]` struct from `cuda/blocks.h`) and
/// its scalar decoder.
pub trait Format {
    /// The GGML type this format decodes.
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

// SAFETY: integers.
unsafe impl Pod for u16 {}
// SAFETY: integers.
unsafe impl Pod for u32 {}

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

/// Whether `ty`'s values are already of the output type `O` (f16 into f16,
/// bf16 into bf16): then decoding copies their bits, so that the output is the
/// input exactly (widening to f32 and rounding back would quiet a signalling
/// NaN).
fn is_copy<O: OutElem>(ty: GgmlType) -> bool {
    matches!(
        (ty, O::OUT),
        (GgmlType::F16, OutType::F16) | (GgmlType::BF16, OutType::BF16)
    )
}

/// The bits of `src` into `out` (same type, checked lengths).
fn copy_bits<O: OutElem>(src: &[u8], out: &mut [O]) {
    crate::out::as_bytes_mut(out).copy_from_slice(src);
}

/// The scalar reference: one thread, one block at a time.
pub fn dequantize_reference<O: OutElem>(ty: GgmlType, src: &[u8], out: &mut [O]) -> Result<()> {
    check_lengths(ty, src.len(), out.len())?;
    if is_copy::<O>(ty) {
        copy_bits(src, out);
        return Ok(());
    }
    let f = decoder::<O>(ty).ok_or(Error::Unsupported { tensor: None, ty })?;
    f(src, out);
    Ok(())
}

/// Elements per parallel task: large enough to amortize scheduling, small
/// enough to balance across cores and stay in cache.
const CHUNK_ELEMS: usize = 1 << 16;

/// The fast path: the best SIMD kernels this CPU runs ([`Level::best`]), or the
/// scalar decoders for types without one, over the threads of [`crate::pool`].
/// Large outputs are written with non-temporal stores.
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
    check_level(level)?;
    let scalar = decoder::<O>(ty).ok_or(Error::Unsupported { tensor: None, ty })?;
    let writer = if is_copy::<O>(ty) {
        (copy_bits::<O> as DecodeFn<O>, fast::Write::Cached)
    } else {
        fast::choose_writer(ty, level, streaming, out.as_ptr(), scalar)
    };
    run_chunks(level, writer, ty, src, out)
}

/// An error where this CPU cannot run `level`.
fn check_level(level: Level) -> Result<()> {
    if !level.is_available() {
        return Err(Error::Invalid(format!(
            "this CPU cannot run the {} kernels",
            level.name()
        )));
    }
    Ok(())
}

/// What [`dequantize_with`] costs at the least, for benchmarks: the same
/// chunks over the same threads, the input read once and the output written
/// with the same stores, and nothing decoded. The output's values are
/// meaningless.
pub fn fill_limit<O: OutElem>(
    level: Level,
    streaming: bool,
    ty: GgmlType,
    src: &[u8],
    out: &mut [O],
) -> Result<()> {
    check_lengths(ty, src.len(), out.len())?;
    check_level(level)?;
    let writer = fast::choose_fill(level, streaming, out.as_ptr());
    run_chunks(level, writer, ty, src, out)
}

/// Runs `writer` over `src` and `out` in parallel chunks of whole blocks, on
/// this process's pool (`crate::pool`: rayon's global one hangs after `fork`).
fn run_chunks<O: OutElem>(
    level: Level,
    writer: (DecodeFn<O>, fast::Write),
    ty: GgmlType,
    src: &[u8],
    out: &mut [O],
) -> Result<()> {
    let blocks_per_chunk = (CHUNK_ELEMS / ty.block_elems()).max(1);
    let (qk, bb) = (ty.block_elems(), ty.block_bytes());
    if out.len() <= blocks_per_chunk * qk {
        // one chunk: decoded on the calling thread, without waking the pool
        // (which costs more than the decode of a small tensor)
        fast::run(level, writer, ty, src, out);
        return Ok(());
    }
    crate::pool::install(|| {
        out.par_chunks_mut(blocks_per_chunk * qk)
            .zip(src.par_chunks(blocks_per_chunk * bb))
            .for_each(|(y, x)| fast::run(level, writer, ty, x, y))
    })
}

/// [`dequantize`] into a new vector, allocated fallibly (an error where memory
/// cannot hold it, never an abort).
pub fn dequantize_to_vec<O: OutElem>(ty: GgmlType, src: &[u8]) -> Result<Vec<O>> {
    let bb = ty.block_bytes();
    if !src.len().is_multiple_of(bb) {
        return Err(Error::Length(format!(
            "{} bytes is not a whole number of {ty} blocks ({bb} bytes each)",
            src.len()
        )));
    }
    let n = (src.len() / bb) as u64 * ty.block_elems() as u64;
    let mut out = crate::alloc::try_vec(n)
        .ok_or_else(|| Error::Length(format!("{n} elements do not fit in memory")))?;
    dequantize(ty, src, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_type_and_no_other_has_a_decoder() {
        for t in crate::types::TYPES {
            assert_eq!(decoder::<f32>(t.ty).is_some(), t.dequantizable, "{}", t.ty);
        }
        assert_eq!(GgmlType::dequantizable().count(), 28);
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
