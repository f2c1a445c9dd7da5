//! q6_k, AVX2 and AVX-512: per half of the block, the 64 `ql` and 32 `qh` bytes
//! give four runs of 32 six-bit codes (low nibble or high nibble of `ql`, bit
//! pair `2k` of `qh`), offset by 32 as bytes; each 16 values share the scale `d
//! * sc`, formed once per group. Mirrors `cpu/q6_k.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, load32, Isa, Out};
use crate::blocks::block_q6_K;

kernel!(q6_k::Q6_K, |src, out| {
    let (m4, m2, off) = (
        _mm256_set1_epi8(0xF),
        _mm256_set1_epi8(3),
        _mm256_set1_epi8(32),
    );
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_q6_K>() * 256) };
    for b in src.chunks_exact(size_of::<block_q6_K>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = unsafe { f16_at(p.add(offset_of!(block_q6_K, d))) };
        // SAFETY: the 16 bytes of `scales` lie inside the block (`src`,
        // borrowed for the whole kernel); bytes need no alignment.
        let sc = unsafe { &*p.add(offset_of!(block_q6_K, scales)).cast::<[i8; 16]>() };
        for half in 0..2 {
            // SAFETY: `half < 2`: bytes `64 * half..64 * half + 64` of the 128
            // of `ql`, inside the block.
            let ql = unsafe { p.add(offset_of!(block_q6_K, ql) + 64 * half) };
            // SAFETY: the 64 bytes at `ql`, as said above.
            let (l0, l1) = unsafe { (load32(ql), load32(ql.add(32))) };
            // SAFETY: `half < 2`: bytes `32 * half..32 * half + 32` of the 64
            // of `qh`, inside the block.
            let qh = unsafe { load32(p.add(offset_of!(block_q6_K, qh) + 32 * half)) };
            let lows = [
                _mm256_and_si256(l0, m4),
                _mm256_and_si256(l1, m4),
                _mm256_and_si256(_mm256_srli_epi16::<4>(l0), m4),
                _mm256_and_si256(_mm256_srli_epi16::<4>(l1), m4),
            ];
            for (k, low) in lows.into_iter().enumerate() {
                // bit pair 2k of each qh byte (a 16-bit shift: the masked bits
                // come from the byte itself), above the low nibble
                let high = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * k as i32));
                let high = _mm256_slli_epi16::<4>(_mm256_and_si256(high, m2));
                let q = _mm256_sub_epi8(_mm256_or_si256(low, high), off);
                let g = 8 * half + 2 * k;
                // SAFETY: 32 of the block's 256 values (8 calls per block), `n`
                // in all.
                unsafe {
                    w.i8x16x2_mul(
                        q,
                        _mm256_set1_ps(d * sc[g] as f32),
                        _mm256_set1_ps(d * sc[g + 1] as f32),
                    )
                };
            }
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
