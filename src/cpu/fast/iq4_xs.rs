//! iq4_xs, AVX2 and AVX-512: iq4_nl's lookup per sub-block of 32, each with the
//! scale `d * (ls - 32)` of its 6-bit `ls` (low 4 bits in `scales_l`, top 2 in
//! `scales_h`). Mirrors `cpu/iq4_xs.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, nibbles32, Isa, Out};
use crate::blocks::block_iq4_xs;
use crate::tables::KVALUES_IQ4NL;

kernel!(iq4_xs::IQ4_XS, |src, out| {
    let values = _mm256_broadcastsi128_si256(_mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast()));
    let mut w = S::out::<O, NT>(out, src.len() / size_of::<block_iq4_xs>() * 256);
    for b in src.chunks_exact(size_of::<block_iq4_xs>()) {
        let p = b.as_ptr();
        let d = f16_at(p.add(offset_of!(block_iq4_xs, d)));
        let sh = std::ptr::read_unaligned(p.add(offset_of!(block_iq4_xs, scales_h)).cast::<u16>());
        let sh = u16::from_le(sh) as i32;
        let sl = &*p.add(offset_of!(block_iq4_xs, scales_l)).cast::<[u8; 4]>();
        for ib in 0..8 {
            let ls = ((sl[ib / 2] >> (4 * (ib % 2))) & 0xF) as i32 | ((sh >> (2 * ib)) & 3) << 4;
            let dl = _mm256_set1_ps(d * (ls - 32) as f32);
            let qs = p.add(offset_of!(block_iq4_xs, qs) + 16 * ib);
            let q = _mm256_shuffle_epi8(values, nibbles32(qs));
            w.i8x32_mul(q, dl);
        }
    }
    w.finish();
});
