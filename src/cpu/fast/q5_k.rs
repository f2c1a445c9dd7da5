//! q5_k, AVX2 and AVX-512: as q4_k, with sub-block `s`'s fifth bits taken from
//! bit `s` of the 32 `qh` bytes and added as 16. Mirrors `cpu/q5_k.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, load32, Isa, Out};
use crate::blocks::block_q5_K;
use crate::cpu::k_common::scale_min_k4;

kernel!(q5_k::Q5_K, |src, out| {
    let (m4, one) = (_mm256_set1_epi8(0xF), _mm256_set1_epi8(1));
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_q5_K>() * 256) };
    for b in src.chunks_exact(size_of::<block_q5_K>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = unsafe { f16_at(p.add(offset_of!(block_q5_K, d))) };
        // SAFETY: `dmin` lies inside the block.
        let dmin = unsafe { f16_at(p.add(offset_of!(block_q5_K, dmin))) };
        // SAFETY: the 12 bytes of `scales` lie inside the block (`src`,
        // borrowed for the whole kernel); bytes need no alignment.
        let scales = unsafe { &*p.add(offset_of!(block_q5_K, scales)).cast::<[u8; 12]>() };
        // SAFETY: the 32 bytes of `qh` lie inside the block.
        let qh = unsafe { load32(p.add(offset_of!(block_q5_K, qh))) };
        for i in 0..4 {
            // SAFETY: `i < 4`: bytes `32 * i..32 * i + 32` of the 128 of `qs`,
            // inside the block.
            let q = unsafe { load32(p.add(offset_of!(block_q5_K, qs) + 32 * i)) };
            let halves = [
                _mm256_and_si256(q, m4),
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4),
            ];
            for (h, q) in halves.into_iter().enumerate() {
                let s = 2 * i + h;
                // bit s of each byte to bit 0 (a 16-bit shift: the masked bit
                // comes from the byte itself), then worth 16
                let hb = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(s as i32));
                let hb = _mm256_slli_epi16::<4>(_mm256_and_si256(hb, one));
                let (sc, m) = scale_min_k4(s, scales);
                let d1 = _mm256_set1_ps(d * sc as f32);
                let m1 = _mm256_set1_ps(dmin * m as f32);
                // SAFETY: 32 of the block's 256 values (8 calls per block), `n`
                // in all.
                unsafe { w.u8x32_mul_sub(_mm256_or_si256(q, hb), d1, m1) };
            }
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
