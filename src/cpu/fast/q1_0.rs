//! q1_0, AVX2 and AVX-512: each bit picks `d` (set) or `-d` (clear): the bits
//! expanded to lane masks that flip the sign of `d` where clear. Mirrors
//! `cpu/q1_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, Isa, Out};
use crate::blocks::block_q1_0;

kernel!(q1_0::Q1_0, |src, out| {
    let bit = _mm256_set_epi32(128, 64, 32, 16, 8, 4, 2, 1);
    let sign = _mm256_set1_epi32(i32::MIN);
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_q1_0>() * 128) };
    for b in src.chunks_exact(size_of::<block_q1_0>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = _mm256_castps_si256(_mm256_set1_ps(unsafe { f16_at(p.add(offset_of!(block_q1_0, d))) }));
        // SAFETY: `qs` (16 bytes) lies inside the block.
        let qs = unsafe { p.add(offset_of!(block_q1_0, qs)) };
        // the 8 values of byte j
        let values = |j: usize| {
            // SAFETY: `j < 16` (the loop below): byte `j` of `qs`, inside the block.
            let x = unsafe { *qs.add(j) };
            let set = _mm256_cmpeq_epi32(
                _mm256_and_si256(_mm256_set1_epi32(x as i32), bit),
                bit,
            );
            // -d is d with its sign flipped, exactly
            _mm256_castsi256_ps(_mm256_xor_si256(d, _mm256_andnot_si256(set, sign)))
        };
        for j in (0..16).step_by(4) {
            // SAFETY: 32 of the block's 128 values (4 calls per block), `n` in all.
            unsafe { w.f32x32([values(j), values(j + 1), values(j + 2), values(j + 3)]) };
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
