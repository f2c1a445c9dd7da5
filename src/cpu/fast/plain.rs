//! f32, f16, bf16: widened exactly (F16C for f16, a shift for bf16), then
//! stored as the output type through the level's writer, 8 values at a time
//! with AVX2 (bf16 outputs rounded 16 at a time), 16 with AVX-512.
//! Mirrors `cpu/plain.rs`.
//!
//! These formats read as much as they write, or half as much, so the input is
//! also prefetched ahead when streaming (`NT`). With AVX-512, the output goes
//! through the same writer as the quantized formats' (whole 64-byte lines),
//! the last values short of 32 through the AVX2 kernel.

use std::arch::x86_64::*;
use std::ptr::read_unaligned;

use super::avx512::Avx512;
use super::x86::{load16, prefetch_ahead, store8, Avx2, Isa, Out};
use super::Simd;
use crate::cpu::{f16_to_f32, OutElem};

/// Runs `wide` over each whole group of 8 elements (`size` input bytes each)
/// and `one` over the rest, one at a time; `wide` gets the group's input and
/// output pointers (valid for `8 * size` bytes and 8 values, the output
/// 16-byte aligned with `NT` where `out` is), `one` an element's input pointer
/// (valid for `size` bytes).
///
/// # Safety
/// The CPU has AVX2 and F16C.
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
        debug_assert!(i + 8 <= n, "past the output");
        // SAFETY: `i + 8 <= whole <= n`: bytes `size * i..size * (i + 8)` of
        // `src` (`size * n` long) and values `i..i + 8` of `out`, which `wide`
        // is given; the CPU has `prefetch_ahead`'s features (the contract).
        unsafe {
            if NT {
                prefetch_ahead(x.add(size * i));
            }
            wide(x.add(size * i), y.add(i));
        }
    }
    for i in whole..n {
        // SAFETY: `i < n`: bytes `size * i..size * (i + 1)` of `src`, and
        // value `i` of `out`.
        unsafe { *y.add(i) = O::from_f32(one(x.add(size * i))) };
    }
}

/// Runs `group` over each whole group of 32 elements (`size` input bytes
/// each) with the level `S`'s writer, prefetching each group's input when
/// streaming, then `rest` over the elements left (fewer than 32). `group`
/// gets the writer and the group's input pointer, valid for `32 * size`
/// bytes, and must give the writer the group's 32 values.
///
/// # Safety
/// The CPU has the level's features, AVX2 and F16C among them, and with
/// `NT`, `out` is 16-byte aligned.
#[inline(always)]
unsafe fn groups_of_32<S: Isa, O: OutElem, const NT: bool>(
    size: usize,
    src: &[u8],
    out: &mut [O],
    group: impl Fn(&mut S::Out<O, NT>, *const u8),
    rest: impl FnOnce(&[u8], &mut [O]),
) {
    let n = out.len();
    assert_eq!(src.len(), size * n);
    let whole = n / 32 * 32;
    let (body, last) = out.split_at_mut(whole);
    let (src_body, src_last) = src.split_at(size * whole);
    // SAFETY: the features and, with `NT`, the alignment `S::out` needs are
    // this function's contract (`body` starts where `out` does).
    let mut w = unsafe { S::out::<O, NT>(body, whole) };
    let x = src_body.as_ptr();
    for i in (0..whole).step_by(32) {
        if NT {
            // every input line of the group
            for line in (0..32 * size).step_by(64) {
                // SAFETY: `line < 32 * size`: inside the group's input, bytes
                // `size * i..size * (i + 32)` of `src_body`; the CPU has
                // `prefetch_ahead`'s features (the contract).
                unsafe { prefetch_ahead(x.add(size * i + line)) };
            }
        }
        debug_assert!(i + 32 <= whole, "past the output");
        // SAFETY: `i + 32 <= whole`: the group's input, bytes `size *
        // i..size * (i + 32)` of `src_body` (`size * whole` long), which
        // `group` gives the writer as 32 of the `whole` values promised.
        let input = unsafe { x.add(size * i) };
        group(&mut w, input);
    }
    // SAFETY: all `whole` values have been given.
    unsafe { w.finish() };
    // `last` starts `whole` values (a multiple of 64 bytes) past `out`: as
    // aligned as it
    rest(src_last, last);
}

/// [`groups_of_32`] on AVX2: `wide` gives 8 values (its pointer valid for
/// `8 * size` bytes) as f32 lanes, 4 times a group, to the AVX2 writer, which
/// rounds two vectors at once into bf16 (one 32-byte store, NaNs fixed only
/// where there are some) and stores each as [`store8`] does into f32 and
/// f16; [`runs`] does the rest.
///
/// # Safety
/// The CPU has AVX2 and F16C, and with `NT`, `out` is 16-byte aligned.
#[inline(always)]
unsafe fn avx2_groups<O: OutElem, const NT: bool>(
    size: usize,
    src: &[u8],
    out: &mut [O],
    wide: impl Fn(*const u8) -> __m256,
    one: impl Fn(*const u8) -> f32,
) {
    let group = |w: &mut <Avx2 as Isa>::Out<O, NT>, x: *const u8| {
        // SAFETY: `groups_of_32` gives 32 values' input at `x` (`32 * size`
        // bytes): four parts of 8 for `wide`, and the writer these 32 values.
        unsafe { w.f32x32([0, 8, 16, 24].map(|k| wide(x.add(size * k)))) }
    };
    let rest = |src: &[u8], out: &mut [O]| {
        // SAFETY: `runs` gives 8 values' input at `x` and output at `y`,
        // aligned as `store8` needs; the CPU has AVX2 and F16C (the contract).
        let store = |x: *const u8, y: *mut O| unsafe { store8::<O, NT>(y, wide(x)) };
        // SAFETY: the CPU has `runs`' features (the contract), and `out` is as
        // aligned as the whole output.
        unsafe { runs::<O, NT>(size, src, out, store, &one) }
    };
    // SAFETY: the features and alignment are this function's contract.
    unsafe { groups_of_32::<Avx2, O, NT>(size, src, out, group, rest) };
}

/// [`groups_of_32`] on AVX-512: `wide` gives 16 values (its pointer valid for
/// `16 * size` bytes) as f32 lanes, twice a group, to the AVX-512 writer
/// (whole 64-byte lines); `edge` (the AVX2 kernel, with ordinary stores) does
/// the rest.
///
/// # Safety
/// The CPU has AVX-512 F/BW/VL/DQ, AVX2 and F16C, and with `NT`, `out` is
/// 16-byte aligned.
#[inline(always)]
unsafe fn lines<O: OutElem, const NT: bool>(
    size: usize,
    src: &[u8],
    out: &mut [O],
    wide: impl Fn(*const u8) -> __m512,
    edge: impl FnOnce(&[u8], &mut [O]),
) {
    let group = |w: &mut <Avx512 as Isa>::Out<O, NT>, x: *const u8| {
        // SAFETY: `groups_of_32` gives 32 values' input at `x` (`32 * size`
        // bytes): two halves of 16 for `wide`, and the writer these 32 values.
        unsafe { w.put(wide(x), wide(x.add(16 * size))) }
    };
    // SAFETY: the features and alignment are this function's contract.
    unsafe { groups_of_32::<Avx512, O, NT>(size, src, out, group, edge) };
}

impl Simd for crate::cpu::plain::F32 {
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
        // SAFETY: `avx2_groups` gives 8 values' input: 32 bytes at `x`.
        let wide = |x: *const u8| unsafe { _mm256_loadu_ps(x.cast()) };
        // SAFETY: `avx2_groups` gives one value's 4 bytes; an unaligned read.
        let one = |x: *const u8| f32::from_bits(unsafe { read_unaligned(x.cast::<u32>()) });
        // SAFETY: this kernel has AVX2 and F16C, `avx2_groups`'s features, and its
        // own contract gives the alignment `avx2_groups` needs with `NT`.
        unsafe { avx2_groups::<O, NT>(4, src, out, wide, one) };
    }

    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    unsafe fn avx512<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
        // SAFETY: `lines` gives 16 values' input: 64 bytes at `x`.
        let wide = |x: *const u8| unsafe { _mm512_loadu_ps(x.cast()) };
        // SAFETY: this level has AVX2 and F16C; without `NT`, any alignment.
        let edge = |s: &[u8], o: &mut [O]| unsafe { Self::avx2::<O, false>(s, o) };
        // SAFETY: this kernel has `lines`' features, and its own contract
        // gives the alignment `lines` needs with `NT`.
        unsafe { lines::<O, NT>(4, src, out, wide, edge) };
    }
}

impl Simd for crate::cpu::plain::F16 {
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
        // SAFETY: `avx2_groups` gives 8 values' input: 16 bytes at `x`.
        let wide = |x: *const u8| _mm256_cvtph_ps(unsafe { load16(x) });
        // SAFETY: `avx2_groups` gives one value's 2 bytes; an unaligned read.
        let one = |x: *const u8| f16_to_f32(unsafe { read_unaligned(x.cast::<u16>()) });
        // SAFETY: this kernel has AVX2 and F16C, `avx2_groups`'s features, and its
        // own contract gives the alignment `avx2_groups` needs with `NT`.
        unsafe { avx2_groups::<O, NT>(2, src, out, wide, one) };
    }

    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    unsafe fn avx512<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
        // SAFETY: `lines` gives 16 values' input: 32 bytes at `x`.
        let wide = |x: *const u8| _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(x.cast()) });
        // SAFETY: this level has AVX2 and F16C; without `NT`, any alignment.
        let edge = |s: &[u8], o: &mut [O]| unsafe { Self::avx2::<O, false>(s, o) };
        // SAFETY: this kernel has `lines`' features, and its own contract
        // gives the alignment `lines` needs with `NT`.
        unsafe { lines::<O, NT>(2, src, out, wide, edge) };
    }
}

impl Simd for crate::cpu::plain::BF16 {
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
        let wide = |x: *const u8| {
            // SAFETY: `avx2_groups` gives 8 values' input: 16 bytes at `x`.
            let bits = _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(unsafe { load16(x) }));
            _mm256_castsi256_ps(bits)
        };
        // SAFETY: `avx2_groups` gives one value's 2 bytes; an unaligned read.
        let one = |x: *const u8| f32::from_bits((unsafe { read_unaligned(x.cast::<u16>()) } as u32) << 16);
        // SAFETY: this kernel has AVX2 and F16C, `avx2_groups`'s features, and its
        // own contract gives the alignment `avx2_groups` needs with `NT`.
        unsafe { avx2_groups::<O, NT>(2, src, out, wide, one) };
    }

    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    unsafe fn avx512<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
        let wide = |x: *const u8| {
            // SAFETY: `lines` gives 16 values' input: 32 bytes at `x`.
            let bits = _mm512_cvtepu16_epi32(unsafe { _mm256_loadu_si256(x.cast()) });
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(bits))
        };
        // SAFETY: this level has AVX2 and F16C; without `NT`, any alignment.
        let edge = |s: &[u8], o: &mut [O]| unsafe { Self::avx2::<O, false>(s, o) };
        // SAFETY: this kernel has `lines`' features, and its own contract
        // gives the alignment `lines` needs with `NT`.
        unsafe { lines::<O, NT>(2, src, out, wide, edge) };
    }
}
