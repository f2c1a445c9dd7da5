//! iq3_s, AVX2 and AVX-512: per sub-block of 32, its 8 grid rows (9-bit indices,
//! the top bit from `qh`) side by side, its 4 explicit sign bytes applied as
//! integers, times `db = d * (1 + 2s)` (`Out::signed_grid_x32_mul`). Mirrors
//! `cpu/iq3_s.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, Isa, Out};
use crate::blocks::block_iq3_s;
use crate::tables::IQ3S_GRID;

kernel!(iq3_s::IQ3_S, |src, out| {
    // the grid's byte values (odd, 1 to 15), each at index `byte >> 1`
    let magnitudes = _mm256_broadcastsi128_si256(_mm_setr_epi8(
        1, 3, 5, 7, 9, 11, 13, 15, 0, 0, 0, 0, 0, 0, 0, 0,
    ));
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_iq3_s>() * 256) };
    for b in src.chunks_exact(size_of::<block_iq3_s>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = unsafe { f16_at(p.add(offset_of!(block_iq3_s, d))) };
        // SAFETY: the 64 bytes of `qs`, the 8 of `qh`, the 32 of `signs` and
        // the 4 of `scales` lie inside the block; bytes need no alignment, and
        // `src` is borrowed for the whole kernel.
        let (qs, qh, signs, scales) = unsafe {
            (
                &*p.add(offset_of!(block_iq3_s, qs)).cast::<[u8; 64]>(),
                &*p.add(offset_of!(block_iq3_s, qh)).cast::<[u8; 8]>(),
                &*p.add(offset_of!(block_iq3_s, signs)).cast::<[u8; 32]>(),
                &*p.add(offset_of!(block_iq3_s, scales)).cast::<[u8; 4]>(),
            )
        };
        for ib in 0..8 {
            let s = (scales[ib / 2] >> (4 * (ib % 2))) & 0xF;
            // the integer 1 + 2s first, then one f32 product
            let db = _mm256_set1_ps(d * (1 + 2 * s as i32) as f32);
            let row = |k: usize| {
                let hi = (qh[ib] as usize >> k) & 1;
                IQ3S_GRID[qs[8 * ib + k] as usize | hi << 8] as i32
            };
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
            let sign = u32::from_le_bytes(signs[4 * ib..][..4].try_into().unwrap());
            // SAFETY: 32 of the block's 256 values (8 calls per block), `n` in
            // all.
            unsafe { w.signed_grid_x32_mul(g, sign, magnitudes, 1, db) };
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
