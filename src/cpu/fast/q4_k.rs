//! q4_k, AVX2 and AVX-512: each 32 code bytes hold two sub-blocks (low nibbles,
//! then high ones); each sub-block's values are `(d * sc) * q - dmin * m` with
//! the scale and min products formed once per sub-block. Mirrors `cpu/q4_k.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, load32, Isa, Out};
use crate::blocks::block_q4_K;
use crate::cpu::k_common::scale_min_k4;

kernel!(q4_k::Q4_K, |src, out| {
    let m4 = _mm256_set1_epi8(0xF);
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_q4_K>() * 256) };
    for b in src.chunks_exact(size_of::<block_q4_K>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = unsafe { f16_at(p.add(offset_of!(block_q4_K, d))) };
        // SAFETY: `dmin` lies inside the block.
        let dmin = unsafe { f16_at(p.add(offset_of!(block_q4_K, dmin))) };
        // SAFETY: the 12 bytes of `scales` lie inside the block (`src`,
        // borrowed for the whole kernel); bytes need no alignment.
        let scales = unsafe { &*p.add(offset_of!(block_q4_K, scales)).cast::<[u8; 12]>() };
        for i in 0..4 {
            // SAFETY: `i < 4`: bytes `32 * i..32 * i + 32` of the 128 of `qs`,
            // inside the block.
            let q = unsafe { load32(p.add(offset_of!(block_q4_K, qs) + 32 * i)) };
            let halves = [
                _mm256_and_si256(q, m4),
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4),
            ];
            for (h, q) in halves.into_iter().enumerate() {
                let s = 2 * i + h;
                let (sc, m) = scale_min_k4(s, scales);
                let d1 = _mm256_set1_ps(d * sc as f32);
                let m1 = _mm256_set1_ps(dmin * m as f32);
                // SAFETY: 32 of the block's 256 values (8 calls per block), `n`
                // in all.
                unsafe { w.u4x32_mul_sub(q, d1, m1) };
            }
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
