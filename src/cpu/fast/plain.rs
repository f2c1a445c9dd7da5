//! f32, f16, bf16: eight values at a time, widened exactly (F16C for f16, a
//! shift for bf16), then stored as the output type. Mirrors `cpu/plain.rs`.

use std::arch::x86_64::*;
use std::ptr::read_unaligned;

use super::x86::{load16, store8};
use crate::cpu::{f16_to_f32, OutElem};

/// Runs `wide` over each whole group of 8 elements (`size` input bytes each)
/// and `one` over the rest, one at a time; `wide` gets the group's input and
/// output pointers, `one` an element's input pointer.
#[inline(always)]
unsafe fn runs<O: OutElem>(
    size: usize,
    src: &[u8],
    out: &mut [O],
    wide: impl Fn(*const u8, *mut O),
    one: impl Fn(*const u8) -> f32,
) {
    let n = out.len();
    assert_eq!(src.len(), size * n);
    let (x, y) = (src.as_ptr(), out.as_mut_ptr());
    let whole = n / 8 * 8;
    for i in (0..whole).step_by(8) {
        wide(x.add(size * i), y.add(i));
    }
    for i in whole..n {
        *y.add(i) = O::from_f32(one(x.add(size * i)));
    }
}

#[target_feature(enable = "avx2,f16c")]
pub unsafe fn f32_avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
    runs(
        4,
        src,
        out,
        |x, y| store8::<O, NT>(y, _mm256_loadu_ps(x.cast())),
        |x| f32::from_bits(read_unaligned(x.cast::<u32>())),
    );
}

#[target_feature(enable = "avx2,f16c")]
pub unsafe fn f16_avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
    runs(
        2,
        src,
        out,
        |x, y| store8::<O, NT>(y, _mm256_cvtph_ps(load16(x))),
        |x| f16_to_f32(read_unaligned(x.cast::<u16>())),
    );
}

#[target_feature(enable = "avx2,f16c")]
pub unsafe fn bf16_avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
    runs(
        2,
        src,
        out,
        |x, y| {
            let bits = _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(load16(x)));
            store8::<O, NT>(y, _mm256_castsi256_ps(bits))
        },
        |x| f32::from_bits((read_unaligned(x.cast::<u16>()) as u32) << 16),
    );
}
