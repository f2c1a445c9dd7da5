//! q4_0, AVX2 and AVX-512: the 16 code bytes split into low and high nibbles
//! (elements 0..16 and 16..32), each `q - 8` (a code book of -8..7) times `d`.
//! Mirrors `cpu/q4_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, nibbles32, Isa, Out};
use crate::blocks::block_q4_0;

kernel!(q4_0::Q4_0, |src, out| {
    let minus_8_to_7 = _mm256_broadcastsi128_si256(_mm_setr_epi8(
        -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7,
    ));
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_q4_0>() * 32) };
    for b in src.chunks_exact(size_of::<block_q4_0>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = _mm256_set1_ps(unsafe { f16_at(p.add(offset_of!(block_q4_0, d))) });
        // SAFETY: the 16 bytes of `qs` lie inside the block.
        let q = unsafe { nibbles32(p.add(offset_of!(block_q4_0, qs))) };
        // SAFETY: the block's 32 values: 32 per block, `n` in all.
        unsafe { w.i4x32_mul(q, minus_8_to_7, d) };
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
