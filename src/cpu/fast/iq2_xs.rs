//! iq2_xs, AVX2 and AVX-512: per sub-block of 32, the 4 grid rows (9-bit
//! indices) side by side, the signs of their 7-bit indices applied as integers,
//! the two halves times their own `db = d * (0.5 + s) * 0.25`
//! (`Out::signed_grid_x16x2_mul`). Mirrors `cpu/iq2_xs.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::iq2_xxs::iq2_magnitudes;
use super::x86::{kernel, f16_at, Isa, Out};
use crate::blocks::block_iq2_xs;
use crate::tables::{IQ2XS_GRID, KSIGNS_IQ2XS};

kernel!(iq2_xs::IQ2_XS, |src, out| {
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_iq2_xs>() * 256) };
    for b in src.chunks_exact(size_of::<block_iq2_xs>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = unsafe { f16_at(p.add(offset_of!(block_iq2_xs, d))) };
        // SAFETY: `qs` (32 u16) lies inside the block.
        let qs = unsafe { p.add(offset_of!(block_iq2_xs, qs)).cast::<u16>() };
        // SAFETY: the 8 bytes of `scales` lie inside the block (`src`, borrowed
        // for the whole kernel); bytes need no alignment.
        let scales = unsafe { &*p.add(offset_of!(block_iq2_xs, scales)).cast::<[u8; 8]>() };
        for (ib, &sc) in scales.iter().enumerate() {
            let q: [u16; 4] = std::array::from_fn(|l| {
                // SAFETY: `ib < 8`, `l < 4`: u16 `4 * ib + l` of the 32 of
                // `qs`; an unaligned read.
                u16::from_le(unsafe { std::ptr::read_unaligned(qs.add(4 * ib + l)) })
            });
            let row = |l: usize| IQ2XS_GRID[(q[l] & 511) as usize] as i64;
            let g = _mm256_set_epi64x(row(3), row(2), row(1), row(0));
            let signs = (0..4).fold(0u32, |acc, l| {
                acc | (KSIGNS_IQ2XS[(q[l] >> 9) as usize] as u32) << (8 * l)
            });
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
