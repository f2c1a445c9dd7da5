//! The output element types: f32, f16 and bf16, and no others.
//!
//! Decoders write raw f32 or 16-bit patterns through pointers to the output
//! (SIMD stores, GPU kernels), and outputs are viewed as bytes to be written
//! to files: sound only for these three types, whose every bit pattern is a
//! value and whose size is [`OutType::size`]. So [`OutElem`] is sealed: its
//! supertrait is private, and no type outside this crate can implement it.
//!
//! ```
//! fn decode<O: gguf_dequant::OutElem>() -> Vec<O> { vec![O::from_f32(1.5); 4] }
//! assert_eq!(decode::<half::bf16>()[0].to_f32(), 1.5);
//! ```
//!
//! ```compile_fail,E0277
//! // A type from outside the crate cannot be an output type: it does not
//! // implement the private supertrait, and cannot.
//! #[derive(Clone, Copy, Default)]
//! struct Mine(u8);
//! impl gguf_dequant::OutElem for Mine {
//!     const OUT: gguf_dequant::OutType = gguf_dequant::OutType::F32;
//!     fn from_f32(_: f32) -> Self { Mine(0) }
//! }
//! ```

use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::types::{GgmlType, OutType};

mod sealed {
    /// The private supertrait of [`super::OutElem`]. With the `cuda`
    /// feature it also says that the type can be a kernel argument (and
    /// zeroed in device memory), so that
    /// every output type is a GPU output type.
    #[cfg(feature = "cuda")]
    pub trait Sealed: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits {}
    #[cfg(not(feature = "cuda"))]
    pub trait Sealed {}

    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
}

/// An output element type: f32, or f32 rounded to nearest even into f16 or
/// bf16. Sealed: implemented for exactly these three.
pub trait OutElem: sealed::Sealed + Copy + Send + Sync + Default + 'static {
    const OUT: OutType;
    fn from_f32(v: f32) -> Self;
    /// Converts a run of values, `dst.len()` of them.
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

// Every output type is as large as its `OutType` says: the raw writers and the
// byte views rely on it.
const _: () = {
    assert!(std::mem::size_of::<f32>() == OutType::F32.size());
    assert!(std::mem::size_of::<f16>() == OutType::F16.size());
    assert!(std::mem::size_of::<bf16>() == OutType::BF16.size());
};

/// The output's bytes in memory order (what files hold on the little-endian
/// targets this crate runs on).
pub fn as_bytes<O: OutElem>(v: &[O]) -> &[u8] {
    const _: () = assert!(
        cfg!(target_endian = "little"),
        "big-endian hosts are not supported"
    );
    // SAFETY: `O` is f32, f16 or bf16 (sealed): plain bits with no padding,
    // so every byte of the slice is initialized; the length is the slice's
    // size in bytes and u8 has no alignment requirement.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// The output's bytes, to be written by a decoder that writes the output
/// type's bytes itself (the peers, in benchmarks).
pub fn as_bytes_mut<O: OutElem>(v: &mut [O]) -> &mut [u8] {
    let len = std::mem::size_of_val(v);
    // SAFETY: as in `as_bytes`; besides, every bit pattern is a valid f32,
    // f16 or bf16, so whatever is written through the bytes leaves valid values.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

/// The output as f32 values, when it is f32.
pub fn as_f32_mut<O: OutElem>(v: &mut [O]) -> Option<&mut [f32]> {
    if O::OUT != OutType::F32 {
        return None;
    }
    // SAFETY: `O` is f32 itself (sealed, and its `OUT` says so).
    Some(unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<f32>(), v.len()) })
}

/// The output's elements as their raw bits, for comparing outputs bit for bit
/// (NaN payloads included).
pub fn to_bits<O: OutElem>(v: O) -> u32 {
    let b = as_bytes(std::slice::from_ref(&v));
    match *b {
        [a, b, c, d] => u32::from_ne_bytes([a, b, c, d]),
        [a, b] => u16::from_ne_bytes([a, b]) as u32,
        _ => unreachable!("output types are 2 or 4 bytes"),
    }
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

/// The element types of the output types, for [`with_out_elem!`].
#[doc(hidden)]
pub use half::{bf16 as Bf16, f16 as F16};

/// Evaluates `$body` with `$O` the element type of the run-time output type
/// `$out` (an [`OutType`]): the one dispatch from a dtype to the code generic
/// over [`OutElem`].
///
/// ```
/// use gguf_dequant::{with_out_elem, OutElem, OutType};
/// fn size<O: OutElem>() -> usize { std::mem::size_of::<O>() }
/// assert_eq!(with_out_elem!(OutType::BF16, O => size::<O>()), 2);
/// ```
#[macro_export]
macro_rules! with_out_elem {
    ($out:expr, $O:ident => $body:expr) => {
        match $out {
            $crate::types::OutType::F32 => {
                type $O = f32;
                $body
            }
            $crate::types::OutType::F16 => {
                type $O = $crate::out::F16;
                $body
            }
            $crate::types::OutType::BF16 => {
                type $O = $crate::out::Bf16;
                $body
            }
        }
    };
}
