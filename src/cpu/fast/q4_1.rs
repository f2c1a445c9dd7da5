//! q4_1, AVX2 and AVX-512: the 16 code bytes as 32 nibbles (q4_0's order), `q *
//! d + m`. Mirrors `cpu/q4_1.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, nibbles32, Isa, Out};
use crate::blocks::block_q4_1;

kernel!(q4_1::Q4_1, |src, out| {
    let mut w = S::out::<O, NT>(out, src.len() / size_of::<block_q4_1>() * 32);
    for b in src.chunks_exact(size_of::<block_q4_1>()) {
        let p = b.as_ptr();
        let d = _mm256_set1_ps(f16_at(p.add(offset_of!(block_q4_1, d))));
        let m = _mm256_set1_ps(f16_at(p.add(offset_of!(block_q4_1, m))));
        let q = nibbles32(p.add(offset_of!(block_q4_1, qs)));
        w.u8x32_mul_add(q, d, m);
    }
    w.finish();
});
