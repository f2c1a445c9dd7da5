//! iq3_s, AVX2 and AVX-512: per sub-block of 32, its 8 grid rows (9-bit indices,
//! the top bit from `qh`) side by side, its 4 explicit sign bytes applied as
//! integers, times `db = d * (1 + 2s)`. Mirrors `cpu/iq3_s.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, Isa, Out};
use crate::blocks::block_iq3_s;
use crate::tables::IQ3S_GRID;

kernel!(iq3_s::IQ3_S, |src, out| {
    let mut w = S::out::<O, NT>(out, src.len() / size_of::<block_iq3_s>() * 256);
    for b in src.chunks_exact(size_of::<block_iq3_s>()) {
        let p = b.as_ptr();
        let d = f16_at(p.add(offset_of!(block_iq3_s, d)));
        let qs = &*p.add(offset_of!(block_iq3_s, qs)).cast::<[u8; 64]>();
        let qh = &*p.add(offset_of!(block_iq3_s, qh)).cast::<[u8; 8]>();
        let signs = &*p.add(offset_of!(block_iq3_s, signs)).cast::<[u8; 32]>();
        let scales = &*p.add(offset_of!(block_iq3_s, scales)).cast::<[u8; 4]>();
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
            let q = S::apply_signs(g, sign);
            w.i8x32_mul(q, db);
        }
    }
    w.finish();
});
