//! q4_1, AVX2 and AVX-512: the 16 code bytes as 32 nibbles (q4_0's order), `q *
//! d + m`. Mirrors `cpu/q4_1.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, nibbles32, Isa, Out};
use crate::blocks::block_q4_1;

kernel!(q4_1::Q4_1, |src, out| {
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_q4_1>() * 32) };
    for b in src.chunks_exact(size_of::<block_q4_1>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = _mm256_set1_ps(unsafe { f16_at(p.add(offset_of!(block_q4_1, d))) });
        // SAFETY: `m` lies inside the block.
        let m = _mm256_set1_ps(unsafe { f16_at(p.add(offset_of!(block_q4_1, m))) });
        // SAFETY: the 16 bytes of `qs` lie inside the block.
        let q = unsafe { nibbles32(p.add(offset_of!(block_q4_1, qs))) };
        // SAFETY: the block's 32 values: 32 per block, `n` in all.
        unsafe { w.u4x32_mul_add(q, d, m) };
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
