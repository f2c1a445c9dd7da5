//! iq4_xs, AVX2 and AVX-512: iq4_nl's lookup per sub-block of 32, each with the
//! scale `d * (ls - 32)` of its 6-bit `ls` (low 4 bits in `scales_l`, top 2 in
//! `scales_h`). Mirrors `cpu/iq4_xs.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, nibbles32, Isa, Out};
use crate::blocks::block_iq4_xs;
use crate::tables::KVALUES_IQ4NL;

kernel!(iq4_xs::IQ4_XS, |src, out| {
    // SAFETY: the table is 16 bytes, the load's size.
    let values = _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast()) });
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_iq4_xs>() * 256) };
    for b in src.chunks_exact(size_of::<block_iq4_xs>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = unsafe { f16_at(p.add(offset_of!(block_iq4_xs, d))) };
        // SAFETY: the 2 bytes of `scales_h` lie inside the block; an unaligned
        // read.
        let sh = unsafe { std::ptr::read_unaligned(p.add(offset_of!(block_iq4_xs, scales_h)).cast::<u16>()) };
        let sh = u16::from_le(sh) as i32;
        // SAFETY: the 4 bytes of `scales_l` lie inside the block (`src`,
        // borrowed for the whole kernel); bytes need no alignment.
        let sl = unsafe { &*p.add(offset_of!(block_iq4_xs, scales_l)).cast::<[u8; 4]>() };
        for ib in 0..8 {
            let ls = ((sl[ib / 2] >> (4 * (ib % 2))) & 0xF) as i32 | ((sh >> (2 * ib)) & 3) << 4;
            let dl = _mm256_set1_ps(d * (ls - 32) as f32);
            // SAFETY: `ib < 8`: bytes `16 * ib..16 * ib + 16` of the 128 of
            // `qs`, inside the block.
            let q = unsafe { nibbles32(p.add(offset_of!(block_iq4_xs, qs) + 16 * ib)) };
            // SAFETY: 32 of the block's 256 values (8 calls per block), `n` in
            // all.
            unsafe { w.i4x32_mul(q, values, dl) };
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
