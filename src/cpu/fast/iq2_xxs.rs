//! iq2_xxs, AVX2 and AVX-512: per sub-block of 32, the 4 grid rows (8 bytes
//! each) side by side, the 4 sign bytes (from `KSIGNS_IQ2XS`) applied to them as
//! integers, times `db = d * (0.5 + s) * 0.25` (`Out::signed_grid_x32_mul`).
//! Mirrors `cpu/iq2_xxs.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, Isa, Out};
use crate::blocks::block_iq2_xxs;
use crate::tables::{IQ2XXS_GRID, KSIGNS_IQ2XS};

/// The iq2 grids' byte values 8, 25 and 43, each at index `byte >> 4`, in
/// each 128-bit half ([`Out::signed_grid_x32_mul`]'s `mags`).
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub(super) fn iq2_magnitudes() -> __m256i {
    _mm256_broadcastsi128_si256(_mm_setr_epi8(
        8, 25, 43, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ))
}

/// The 4 sign bytes of a sub-block from its 4 7-bit sign indices.
#[inline(always)]
pub(super) fn ksigns4(aux: u32) -> u32 {
    (0..4).fold(0, |acc, l| {
        acc | (KSIGNS_IQ2XS[(aux >> (7 * l)) as usize & 127] as u32) << (8 * l)
    })
}

kernel!(iq2_xxs::IQ2_XXS, |src, out| {
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_iq2_xxs>() * 256) };
    for b in src.chunks_exact(size_of::<block_iq2_xxs>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = unsafe { f16_at(p.add(offset_of!(block_iq2_xxs, d))) };
        // SAFETY: `qs` (64 bytes: 16 u32) lies inside the block.
        let qs = unsafe { p.add(offset_of!(block_iq2_xxs, qs)).cast::<u32>() };
        for ib in 0..8 {
            // SAFETY: `ib < 8`: u32 `2 * ib` and `2 * ib + 1` of the 16 of
            // `qs`; unaligned reads.
            let (grid_idx, aux) = unsafe {
                (
                    u32::from_le(std::ptr::read_unaligned(qs.add(2 * ib))),
                    u32::from_le(std::ptr::read_unaligned(qs.add(2 * ib + 1))),
                )
            };
            // ggml's order: (d * (0.5 + s)) * 0.25
            let db = _mm256_set1_ps(d * (0.5 + (aux >> 28) as f32) * 0.25);
            let row = |l: u32| IQ2XXS_GRID[(grid_idx >> (8 * l)) as usize & 0xFF] as i64;
            let g = _mm256_set_epi64x(row(3), row(2), row(1), row(0));
            // SAFETY: 32 of the block's 256 values (8 calls per block), `n` in
            // all.
            unsafe { w.signed_grid_x32_mul(g, ksigns4(aux), iq2_magnitudes(), 4, db) };
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
