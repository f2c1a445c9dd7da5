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
    let mut w = S::out::<O, NT>(out, src.len() / size_of::<block_q4_K>() * 256);
    for b in src.chunks_exact(size_of::<block_q4_K>()) {
        let p = b.as_ptr();
        let d = f16_at(p.add(offset_of!(block_q4_K, d)));
        let dmin = f16_at(p.add(offset_of!(block_q4_K, dmin)));
        let scales = &*p.add(offset_of!(block_q4_K, scales)).cast::<[u8; 12]>();
        for i in 0..4 {
            let q = load32(p.add(offset_of!(block_q4_K, qs) + 32 * i));
            let halves = [
                _mm256_and_si256(q, m4),
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4),
            ];
            for (h, q) in halves.into_iter().enumerate() {
                let s = 2 * i + h;
                let (sc, m) = scale_min_k4(s, scales);
                let d1 = _mm256_set1_ps(d * sc as f32);
                let m1 = _mm256_set1_ps(dmin * m as f32);
                w.u8x32_mul_sub(q, d1, m1);
            }
        }
    }
    w.finish();
});
