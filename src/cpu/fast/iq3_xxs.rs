//! iq3_xxs, AVX2 and AVX-512: per sub-block of 32, its 8 grid rows (4 bytes
//! each) side by side, the 4 sign bytes (from `KSIGNS_IQ2XS`) applied as
//! integers, times `db = d * (0.5 + s) * 0.5` (`Out::signed_grid_x32_mul`).
//! Mirrors `cpu/iq3_xxs.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::iq2_xxs::ksigns4;
use super::x86::{kernel, f16_at, Isa, Out};
use crate::blocks::block_iq3_xxs;
use crate::tables::IQ3XXS_GRID;

kernel!(iq3_xxs::IQ3_XXS, |src, out| {
    // the grid's byte values, each at index `byte >> 3`
    let magnitudes = _mm256_broadcastsi128_si256(_mm_setr_epi8(
        4, 12, 20, 28, 36, 44, 52, 62, 0, 0, 0, 0, 0, 0, 0, 0,
    ));
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_iq3_xxs>() * 256) };
    for b in src.chunks_exact(size_of::<block_iq3_xxs>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = unsafe { f16_at(p.add(offset_of!(block_iq3_xxs, d))) };
        // SAFETY: the 96 bytes of `qs` lie inside the block (`src`, borrowed
        // for the whole kernel); bytes need no alignment.
        let qs = unsafe { &*p.add(offset_of!(block_iq3_xxs, qs)).cast::<[u8; 96]>() };
        for ib in 0..8 {
            let aux = u32::from_le_bytes(qs[64 + 4 * ib..][..4].try_into().unwrap());
            // ggml's order: (d * (0.5 + s)) * 0.5
            let db = _mm256_set1_ps(d * (0.5 + (aux >> 28) as f32) * 0.5);
            let row = |k: usize| IQ3XXS_GRID[qs[8 * ib + k] as usize] as i32;
            let g = _mm256_set_epi32(
                row(7),
                row(6),
                row(5),
                row(4),
                row(3),
                row(2),
                row(1),
                row(0),
            );
            // SAFETY: 32 of the block's 256 values (8 calls per block), `n` in
            // all.
            unsafe { w.signed_grid_x32_mul(g, ksigns4(aux), magnitudes, 3, db) };
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
