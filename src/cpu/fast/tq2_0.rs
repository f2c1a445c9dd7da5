//! tq2_0, AVX2 and AVX-512: as q2_k's codes without scales: per half of the
//! block, bit pair `2l` of its 32 code bytes gives 32 codes, each `q - 1` (a
//! code book of -1..2) times `d` (`Out::i4x32_mul`). Mirrors `cpu/tq2_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, load32, Isa, Out};
use crate::blocks::block_tq2_0;

kernel!(tq2_0::TQ2_0, |src, out| {
    let m2 = _mm256_set1_epi8(3);
    let minus_1_to_2 = _mm256_setr_epi8(
        -1, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
        -1, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    );
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
            // one bit pair at a time (the four shifted copies at once, with
            // the code book, spilled a register and ran 4x slower into f16)
            for l in 0..4 {
                let c = _mm256_srl_epi16(qs, _mm_cvtsi32_si128(2 * l));
                let q = _mm256_and_si256(c, m2);
                // SAFETY: 32 of the block's 256 values (8 calls per block), `n`
                // in all.
                unsafe { w.i4x32_mul(q, minus_1_to_2, d) };
            }
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
