//! f32, f16, bf16: widened exactly (F16C for f16, a shift for bf16), then
//! stored as the output type; 8 values at a time with AVX2, 16 with AVX-512.
//! Mirrors `cpu/plain.rs`.
//!
//! These formats read as much as they write, or half as much, so the input is
//! also prefetched ahead when streaming (`NT`). With AVX-512, the output goes
//! through the same writer as the quantized formats' (whole 64-byte lines),
//! the last values short of 32 through the AVX2 kernel.

use std::arch::x86_64::*;
use std::ptr::read_unaligned;

use super::avx512::Avx512;
use super::x86::{load16, prefetch_ahead, store8, Isa, Out};
use super::Simd;
use crate::cpu::{f16_to_f32, OutElem};

/// Runs `wide` over each whole group of 8 elements (`size` input bytes each)
/// and `one` over the rest, one at a time; `wide` gets the group's input and
/// output pointers, `one` an element's input pointer.
#[inline(always)]
unsafe fn runs<O: OutElem, const NT: bool>(
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
        if NT {
            prefetch_ahead(x.add(size * i));
        }
        wide(x.add(size * i), y.add(i));
    }
    for i in whole..n {
        *y.add(i) = O::from_f32(one(x.add(size * i)));
    }
}

/// Runs `wide` over each whole group of 16 elements (`size` input bytes each),
/// which returns their values as f32 lanes, and `edge` (the AVX2 kernel, with
/// ordinary stores) over the rest.
#[inline(always)]
unsafe fn lines<O: OutElem, const NT: bool>(
    size: usize,
    src: &[u8],
    out: &mut [O],
    wide: impl Fn(*const u8) -> __m512,
    edge: impl Fn(&[u8], &mut [O]),
) {
    let n = out.len();
    assert_eq!(src.len(), size * n);
    let whole = n / 32 * 32;
    let (body, last) = out.split_at_mut(whole);
    let (src_body, src_last) = src.split_at(size * whole);
    let mut w = Avx512::out::<O, NT>(body, whole);
    let x = src_body.as_ptr();
    for i in (0..whole).step_by(32) {
        if NT {
            // every input line of the group
            for line in (0..32 * size).step_by(64) {
                prefetch_ahead(x.add(size * i + line));
            }
        }
        w.put(wide(x.add(size * i)), wide(x.add(size * (i + 16))));
    }
    w.finish();
    edge(src_last, last);
}

impl Simd for crate::cpu::plain::F32 {

    #[target_feature(enable = "avx2,f16c")]
    unsafe fn avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
        runs::<O, NT>(
            4,
            src,
            out,
            |x, y| store8::<O, NT>(y, _mm256_loadu_ps(x.cast())),
            |x| f32::from_bits(read_unaligned(x.cast::<u32>())),
        );
    }

    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    unsafe fn avx512<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
        lines::<O, NT>(
            4,
            src,
            out,
            |x| _mm512_loadu_ps(x.cast()),
            |s, o| Self::avx2::<O, false>(s, o),
        );
    }
}

impl Simd for crate::cpu::plain::F16 {

    #[target_feature(enable = "avx2,f16c")]
    unsafe fn avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
        runs::<O, NT>(
            2,
            src,
            out,
            |x, y| store8::<O, NT>(y, _mm256_cvtph_ps(load16(x))),
            |x| f16_to_f32(read_unaligned(x.cast::<u16>())),
        );
    }

    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    unsafe fn avx512<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
        lines::<O, NT>(
            2,
            src,
            out,
            |x| _mm512_cvtph_ps(_mm256_loadu_si256(x.cast())),
            |s, o| Self::avx2::<O, false>(s, o),
        );
    }
}

impl Simd for crate::cpu::plain::BF16 {

    #[target_feature(enable = "avx2,f16c")]
    unsafe fn avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
        runs::<O, NT>(
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

    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    unsafe fn avx512<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
        lines::<O, NT>(
            2,
            src,
            out,
            |x| {
                let bits = _mm512_cvtepu16_epi32(_mm256_loadu_si256(x.cast()));
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(bits))
            },
            |s, o| Self::avx2::<O, false>(s, o),
        );
    }
}
