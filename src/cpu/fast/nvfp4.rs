//! nvfp4, AVX2 and AVX-512: per 16 weights, 8 bytes of E2M1 nibbles (low nibbles
//! first) looked up as doubled integers with a byte shuffle, times half the
//! UE4M3 scale (from a table of all 256). Mirrors `cpu/nvfp4.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, Isa, Out};
use crate::blocks::block_nvfp4;
use crate::tables::KVALUES_MXFP4;

/// Half the UE4M3 value of every byte, exactly, as f32 bits: `(8 + m) * 2^(e - 11)` for
/// exponent `e > 0`, `m * 2^-10` for `e = 0` (the top bit is ignored), and 0
/// for 0x7F (ggml's NaN code).
static UE4M3_HALF: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut x = 0;
    while x < 256 {
        let (e, m) = ((x >> 3) & 0xF, (x & 7) as u32);
        t[x] = if x == 0x7F {
            0
        } else if e == 0 {
            // m * 2^-10, m < 8: exact as an f32 built from its bits
            if m == 0 {
                0
            } else {
                let lz = m.leading_zeros() - 29; // m in [1, 8): 0..=2
                let exp = 127 - 10 + 2 - lz;
                (exp << 23) | (((m << (lz + 1)) & 7) << 20)
            }
        } else {
            // (8 + m) * 2^(e - 11) = (1 + m / 8) * 2^(e - 8)
            ((e as u32 + 127 - 8) << 23) | (m << 20)
        };
        x += 1;
    }
    t
};

kernel!(nvfp4::NVFP4, |src, out| {
    // SAFETY: the table is 16 bytes, the load's size.
    let values = unsafe { _mm_loadu_si128(KVALUES_MXFP4.as_ptr().cast()) };
    let m4 = _mm_set1_epi8(0xF);
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_nvfp4>() * 64) };
    for b in src.chunks_exact(size_of::<block_nvfp4>()) {
        let p = b.as_ptr();
        // sub-block s: its scale, and its 16 values as bytes
        let sub = |s: usize| {
            // SAFETY: `s < 4` (the loop below): byte `s` of the 4 of `d`, inside
            // the block that `p` starts (`chunks_exact`).
            let e = unsafe { *p.add(offset_of!(block_nvfp4, d) + s) };
            let d = _mm256_set1_ps(f32::from_bits(UE4M3_HALF[e as usize]));
            // SAFETY: `s < 4`: bytes `8 * s..8 * s + 8` of the 32 of `qs`,
            // inside the block.
            let qs = unsafe { _mm_loadl_epi64(p.add(offset_of!(block_nvfp4, qs) + 8 * s).cast()) };
            let lo = _mm_and_si128(qs, m4);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(qs), m4);
            (d, _mm_shuffle_epi8(values, _mm_unpacklo_epi64(lo, hi)))
        };
        for s in [0, 2] {
            let ((d0, q0), (d1, q1)) = (sub(s), sub(s + 1));
            // SAFETY: 32 of the block's 64 values (2 calls per block), `n` in
            // all.
            unsafe { w.i8x16x2_mul(_mm256_set_m128i(q1, q0), d0, d1) };
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
