//! iq1_s, AVX2 and AVX-512: per sub-block of 32, its 4 ternary grid rows side
//! by side, plus the sub-block's shift `delta`, times `dl = d * (2s + 1)`
//! (`Out::ternary_x32`). Mirrors `cpu/iq1_s.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, signed_delta, Isa, Out};
use crate::blocks::block_iq1_s;
use crate::tables::IQ1S_GRID;

/// ggml's IQ1S_DELTA.
const DELTA: f32 = 0.125;

kernel!(iq1_s::IQ1_S, |src, out| {
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_iq1_s>() * 256) };
    for b in src.chunks_exact(size_of::<block_iq1_s>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = unsafe { f16_at(p.add(offset_of!(block_iq1_s, d))) };
        // SAFETY: the 32 bytes of `qs` lie inside the block (`src`, borrowed
        // for the whole kernel); bytes need no alignment.
        let qs = unsafe { &*p.add(offset_of!(block_iq1_s, qs)).cast::<[u8; 32]>() };
        // SAFETY: `qh` (8 u16) lies inside the block.
        let qh = unsafe { p.add(offset_of!(block_iq1_s, qh)).cast::<u16>() };
        for ib in 0..8 {
            // SAFETY: `ib < 8`: u16 `ib` of `qh`; an unaligned read.
            let qh = u16::from_le(unsafe { std::ptr::read_unaligned(qh.add(ib)) });
            // the integer 2s + 1 first, then one f32 product
            let dl = _mm256_set1_ps(d * (2 * ((qh >> 12) & 7) as i32 + 1) as f32);
            let delta = signed_delta(DELTA, qh as u32 >> 15);
            let row = |l: usize| {
                let hi = (qh as usize >> (3 * l)) & 7;
                IQ1S_GRID[qs[4 * ib + l] as usize | hi << 8]
            };
            // SAFETY: 32 of the block's 256 values (8 calls per block), `n` in
            // all.
            unsafe { w.ternary_x32(std::array::from_fn(row), [delta; 4], dl, dl) };
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
