//! q5_1, AVX2 and AVX-512: q5_0's 5-bit codes, unsigned, as `q * d + m`. Mirrors
//! `cpu/q5_1.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, nibbles32, Isa, Out};
use crate::blocks::block_q5_1;

kernel!(q5_1::Q5_1, |src, out| {
    let b4 = _mm256_set1_epi8(0x10);
    let mut w = S::out::<O, NT>(out, src.len() / size_of::<block_q5_1>() * 32);
    for b in src.chunks_exact(size_of::<block_q5_1>()) {
        let p = b.as_ptr();
        let d = _mm256_set1_ps(f16_at(p.add(offset_of!(block_q5_1, d))));
        let m = _mm256_set1_ps(f16_at(p.add(offset_of!(block_q5_1, m))));
        let qh = std::ptr::read_unaligned(p.add(offset_of!(block_q5_1, qh)).cast::<u32>());
        let high = _mm256_and_si256(S::bits_to_bytes(u32::from_le(qh)), b4);
        let q = _mm256_or_si256(nibbles32(p.add(offset_of!(block_q5_1, qs))), high);
        w.u8x32_mul_add(q, d, m);
    }
    w.finish();
});
