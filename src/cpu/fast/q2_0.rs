//! q2_0, AVX2 and AVX-512: the 2-bit codes of each byte (4 elements, lowest bits
//! first) interleaved back into element order with byte and word unpacks, each
//! `q - 1` (a code book of -1..2) times `d` (`Out::i4x32_mul`). Mirrors
//! `cpu/q2_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, load16, Isa, Out};
use crate::blocks::block_q2_0;

kernel!(q2_0::Q2_0, |src, out| {
    let m2 = _mm_set1_epi8(3);
    let minus_1_to_2 = _mm256_setr_epi8(
        -1, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
        -1, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    );
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_q2_0>() * 64) };
    for b in src.chunks_exact(size_of::<block_q2_0>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = _mm256_set1_ps(unsafe { f16_at(p.add(offset_of!(block_q2_0, d))) });
        // SAFETY: the 16 bytes of `qs` lie inside the block.
        let qs = unsafe { load16(p.add(offset_of!(block_q2_0, qs))) };
        // c[k]: bit pair k of every byte
        let c = [
            qs,
            _mm_srli_epi16::<2>(qs),
            _mm_srli_epi16::<4>(qs),
            _mm_srli_epi16::<6>(qs),
        ]
        .map(|x| _mm_and_si128(x, m2));
        // (c0, c1) and (c2, c3) byte-interleaved, then word-interleaved: bytes
        // 4j..4j + 4 are the codes of byte j
        let (c01_lo, c01_hi) = (_mm_unpacklo_epi8(c[0], c[1]), _mm_unpackhi_epi8(c[0], c[1]));
        let (c23_lo, c23_hi) = (_mm_unpacklo_epi8(c[2], c[3]), _mm_unpackhi_epi8(c[2], c[3]));
        let ordered = [
            _mm_unpacklo_epi16(c01_lo, c23_lo),
            _mm_unpackhi_epi16(c01_lo, c23_lo),
            _mm_unpacklo_epi16(c01_hi, c23_hi),
            _mm_unpackhi_epi16(c01_hi, c23_hi),
        ];
        // SAFETY: the block's 64 values, 32 at a time, `n` in all.
        unsafe {
            w.i4x32_mul(_mm256_set_m128i(ordered[1], ordered[0]), minus_1_to_2, d);
            w.i4x32_mul(_mm256_set_m128i(ordered[3], ordered[2]), minus_1_to_2, d);
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
