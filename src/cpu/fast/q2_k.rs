//! q2_k, AVX2 and AVX-512: per half of the block, bit pair `2k` of its 32 code
//! bytes gives 32 codes; each 16 share `(d * sc) * q - dmin * m`, the products
//! formed once per group (`Out::u3x16x2_mul_sub`). Mirrors `cpu/q2_k.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, load32, Isa, Out};
use crate::blocks::block_q2_K;

kernel!(q2_k::Q2_K, |src, out| {
    let m2 = _mm256_set1_epi8(3);
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_q2_K>() * 256) };
    for b in src.chunks_exact(size_of::<block_q2_K>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = unsafe { f16_at(p.add(offset_of!(block_q2_K, d))) };
        // SAFETY: `dmin` lies inside the block.
        let dmin = unsafe { f16_at(p.add(offset_of!(block_q2_K, dmin))) };
        // SAFETY: the 16 bytes of `scales` lie inside the block (`src`,
        // borrowed for the whole kernel); bytes need no alignment.
        let sc = unsafe { &*p.add(offset_of!(block_q2_K, scales)).cast::<[u8; 16]>() };
        for half in 0..2 {
            // SAFETY: `half < 2`: bytes `32 * half..32 * half + 32` of the 64
            // of `qs`, inside the block.
            let qs = unsafe { load32(p.add(offset_of!(block_q2_K, qs) + 32 * half)) };
            for k in 0..4 {
                let q = _mm256_srl_epi16(qs, _mm_cvtsi32_si128(2 * k as i32));
                let q = _mm256_and_si256(q, m2);
                // groups `g` and `g + 1`, 16 values each
                let g = 8 * half + 2 * k;
                let scale_min = |s: u8| {
                    let dl = _mm256_set1_ps(d * (s & 0xF) as f32);
                    (dl, _mm256_set1_ps(dmin * (s >> 4) as f32))
                };
                let ((d0, m0), (d1, m1)) = (scale_min(sc[g]), scale_min(sc[g + 1]));
                // SAFETY: 32 of the block's 256 values (8 calls per block), `n`
                // in all.
                unsafe { w.u3x16x2_mul_sub(q, d0, m0, d1, m1) };
            }
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
