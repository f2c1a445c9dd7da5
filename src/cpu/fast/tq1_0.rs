//! tq1_0, AVX2 and AVX-512: base-3 digits, ggml's way: digit `n` of byte `x` is
//! `((x * 3^n mod 256) * 3) >> 8`, here in 16-bit lanes over 32 (then 16) bytes
//! at a time, minus 1, times `d` (`Out::ternary_digits_x32_mul`). The 16
//! digits of `qh` are computed as integers first, then go the same way.
//! Mirrors `cpu/tq1_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, load16, load32, Isa, Out};
use crate::blocks::block_tq1_0;

const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// Digit `n` of each byte `x` in 16-bit lanes `x16`: `((x * 3^n) mod 256 * 3) >> 8`,
/// with `pow` holding `3^n` in each lane.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn digit16(x16: __m256i, pow: __m256i) -> __m256i {
    let q = _mm256_and_si256(_mm256_mullo_epi16(x16, pow), _mm256_set1_epi16(0xFF));
    _mm256_srli_epi16::<8>(_mm256_mullo_epi16(q, _mm256_set1_epi16(3)))
}

/// Digit `n` of 32 bytes (0, 1 or 2), as bytes in order; `pow` holds `3^n` in
/// each 16-bit lane (it may differ between the two 128-bit halves).
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn digits32(x: __m256i, pow: __m256i) -> __m256i {
    let zero = _mm256_setzero_si256();
    // unpack and pack work within 128-bit lanes, so the order comes back
    let lo = digit16(_mm256_unpacklo_epi8(x, zero), pow);
    let hi = digit16(_mm256_unpackhi_epi8(x, zero), pow);
    _mm256_packus_epi16(lo, hi)
}

kernel!(tq1_0::TQ1_0, |src, out| {
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_tq1_0>() * 256) };
    for b in src.chunks_exact(size_of::<block_tq1_0>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = _mm256_set1_ps(unsafe { f16_at(p.add(offset_of!(block_tq1_0, d))) });
        // qs[0..32]: 5 digits of 32 bytes, elements 0..160
        // SAFETY: bytes 0..32 of the 48 of `qs`, inside the block.
        let qs = unsafe { load32(p.add(offset_of!(block_tq1_0, qs))) };
        for pow in POW3 {
            // SAFETY: 32 of the block's 256 values (8 calls per block), `n` in
            // all.
            unsafe { w.ternary_digits_x32_mul(digits32(qs, _mm256_set1_epi16(pow as i16)), d) };
        }
        // qs[32..48]: 5 digits of 16 bytes, elements 160..240, two digits at
        // a time: both halves of the 256-bit lanes hold the same 16 bytes,
        // each half takes its own digit
        // SAFETY: bytes 32..48 of the 48 of `qs`, inside the block.
        let qs = _mm256_broadcastsi128_si256(unsafe { load16(p.add(offset_of!(block_tq1_0, qs) + 32)) });
        let two = |a: u8, b: u8| {
            let pow = _mm256_set_m128i(_mm_set1_epi16(b as i16), _mm_set1_epi16(a as i16));
            digits32(qs, pow)
        };
        // SAFETY: 64 of the block's 256 values, as above.
        unsafe {
            w.ternary_digits_x32_mul(two(POW3[0], POW3[1]), d);
            w.ternary_digits_x32_mul(two(POW3[2], POW3[3]), d);
        }
        let last = _mm256_castsi256_si128(digits32(qs, _mm256_set1_epi16(POW3[4] as i16)));
        // qh: 4 digits of 4 bytes, elements 240..256, digit-major
        // SAFETY: the 4 bytes of `qh` lie inside the block (`src`, borrowed for
        // the whole kernel); bytes need no alignment.
        let qh = unsafe { &*p.add(offset_of!(block_tq1_0, qh)).cast::<[u8; 4]>() };
        let mut q = [0u8; 16];
        for (n, &pow) in POW3[..4].iter().enumerate() {
            for (j, &x) in qh.iter().enumerate() {
                let v = x.wrapping_mul(pow);
                q[4 * n + j] = ((v as u16 * 3) >> 8) as u8;
            }
        }
        // SAFETY: `q` is 16 bytes, the load's size.
        let q = unsafe { _mm_loadu_si128(q.as_ptr().cast()) };
        // SAFETY: the block's last 32 values, as above.
        unsafe { w.ternary_digits_x32_mul(_mm256_set_m128i(q, last), d) };
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
