//! iq1_m, AVX2 and AVX-512: per sub-block of 32, its 4 ternary grid rows side
//! by side, plus each group of 8's shift `delta`, times its half's `dl = d *
//! (2s + 1)` (`Out::ternary_x32`), `d` assembled from the top nibbles of the 4
//! scale words. Mirrors `cpu/iq1_m.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_bits_to_f32, signed_delta, Isa, Out};
use crate::blocks::block_iq1_m;
use crate::tables::IQ1S_GRID;

/// ggml's IQ1S_DELTA.
const DELTA: f32 = 0.125;

kernel!(iq1_m::IQ1_M, |src, out| {
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_iq1_m>() * 256) };
    for b in src.chunks_exact(size_of::<block_iq1_m>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`), inside which lie
        // the 32 bytes of `qs`, the 16 of `qh` and the 8 of `scales`; bytes
        // need no alignment, and `src` is borrowed for the whole kernel.
        let (qs, qh, s) = unsafe {
            (
                &*p.add(offset_of!(block_iq1_m, qs)).cast::<[u8; 32]>(),
                &*p.add(offset_of!(block_iq1_m, qh)).cast::<[u8; 16]>(),
                &*p.add(offset_of!(block_iq1_m, scales)).cast::<[u8; 8]>(),
            )
        };
        let sc: [u16; 4] = std::array::from_fn(|k| u16::from_le_bytes([s[2 * k], s[2 * k + 1]]));
        let d_bits =
            (sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000);
        let d = f16_bits_to_f32(d_bits);
        for ib in 0..8 {
            // the two 3-bit scales of this sub-block's halves; the integer
            // 2s + 1 first, then one f32 product
            let scales = sc[ib / 2] >> (6 * (ib % 2));
            let dl = [scales & 7, (scales >> 3) & 7]
                .map(|s| _mm256_set1_ps(d * (2 * s as i32 + 1) as f32));
            // per group of 8: 3 high bits of its grid index, then its delta's sign
            let h = [qh[2 * ib], qh[2 * ib] >> 4, qh[2 * ib + 1], qh[2 * ib + 1] >> 4];
            let row = |l: usize| IQ1S_GRID[qs[4 * ib + l] as usize | ((h[l] & 7) as usize) << 8];
            let deltas = h.map(|h| signed_delta(DELTA, (h as u32 >> 3) & 1));
            // SAFETY: 32 of the block's 256 values (8 calls per block), `n` in
            // all.
            unsafe { w.ternary_x32(std::array::from_fn(row), deltas, dl[0], dl[1]) };
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
