//! iq2_s, AVX2 and AVX-512: per sub-block of 32, the 4 grid rows (10-bit
//! indices, the top 2 bits from `qh`) side by side, its 4 explicit sign bytes
//! applied as integers, the two halves times their own `db = d * (0.5 + s) *
//! 0.25` (`Out::signed_grid_x16x2_mul`). Mirrors `cpu/iq2_s.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::iq2_xxs::iq2_magnitudes;
use super::x86::{kernel, f16_at, Isa, Out};
use crate::blocks::block_iq2_s;
use crate::tables::IQ2S_GRID;

kernel!(iq2_s::IQ2_S, |src, out| {
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_iq2_s>() * 256) };
    for b in src.chunks_exact(size_of::<block_iq2_s>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = unsafe { f16_at(p.add(offset_of!(block_iq2_s, d))) };
        // SAFETY: the 64 bytes of `qs`, the 8 of `qh` and the 8 of `scales`
        // lie inside the block; bytes need no alignment, and `src` is borrowed
        // for the whole kernel.
        let (qs, qh, scales) = unsafe {
            (
                &*p.add(offset_of!(block_iq2_s, qs)).cast::<[u8; 64]>(),
                &*p.add(offset_of!(block_iq2_s, qh)).cast::<[u8; 8]>(),
                &*p.add(offset_of!(block_iq2_s, scales)).cast::<[u8; 8]>(),
            )
        };
        for ib in 0..8 {
            let row = |l: usize| {
                let hi = (qh[ib] as usize >> (2 * l)) & 3;
                IQ2S_GRID[qs[4 * ib + l] as usize | hi << 8] as i64
            };
            let g = _mm256_set_epi64x(row(3), row(2), row(1), row(0));
            let signs = u32::from_le_bytes(qs[32 + 4 * ib..][..4].try_into().unwrap());
            let sc = scales[ib];
            // ggml's order: (d * (0.5 + s)) * 0.25
            let db0 = _mm256_set1_ps(d * (0.5 + (sc & 0xF) as f32) * 0.25);
            let db1 = _mm256_set1_ps(d * (0.5 + (sc >> 4) as f32) * 0.25);
            // SAFETY: 32 of the block's 256 values (8 calls per block), `n` in
            // all.
            unsafe { w.signed_grid_x16x2_mul(g, signs, iq2_magnitudes(), 4, db0, db1) };
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
