//! tq2_0, AVX2 and AVX-512: as q2_k's codes without scales: per half of the
//! block, bit pair `2l` of its 32 code bytes gives 32 codes, offset by 1 as
//! bytes, times `d`. Mirrors `cpu/tq2_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, load32, Isa, Out};
use crate::blocks::block_tq2_0;

kernel!(tq2_0::TQ2_0, |src, out| {
    let (m2, one) = (_mm256_set1_epi8(3), _mm256_set1_epi8(1));
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_tq2_0>() * 256) };
    for b in src.chunks_exact(size_of::<block_tq2_0>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = _mm256_set1_ps(unsafe { f16_at(p.add(offset_of!(block_tq2_0, d))) });
        for half in 0..2 {
            // SAFETY: `half < 2`: bytes `32 * half..32 * half + 32` of the 64
            // of `qs`, inside the block.
            let qs = unsafe { load32(p.add(offset_of!(block_tq2_0, qs) + 32 * half)) };
            let codes = [
                qs,
                _mm256_srli_epi16::<2>(qs),
                _mm256_srli_epi16::<4>(qs),
                _mm256_srli_epi16::<6>(qs),
            ];
            for c in codes {
                let q = _mm256_sub_epi8(_mm256_and_si256(c, m2), one);
                // SAFETY: 32 of the block's 256 values (8 calls per block), `n`
                // in all.
                unsafe { w.i8x32_mul(q, d) };
            }
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
