//! q2_k: 256 weights in 16 groups of 16; 2-bit codes `q`; each group has a
//! 4-bit scale `sc` and a 4-bit min `m`, themselves scaled by the f16 `d` and
//! `dmin`: `y = (d * sc) * q - dmin * m`.
//!
//! Layout (`block_q2_K`, 84 bytes): `scales: [u8; 16]` (group `g`: `sc` in the
//! low nibble of `scales[g]`, `m` in the high one), `qs: [u8; 64]`, `d: f16`,
//! `dmin: f16`. Each half of the block (128 weights) owns 32 bytes of `qs`:
//! bits `2k..2k+1` of its byte `l` hold weight `32k + l` of the half.
//! Mirrors `cuda/q2_k.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_q2_K;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_q2_K {}

pub struct Q2_K;
impl Format for Q2_K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    type Block = block_q2_K;
    fn decode(b: &block_q2_K, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        let dmin = f16_to_f32(b.dmin);
        for (g, (&sc, y)) in b.scales.iter().zip(y.chunks_exact_mut(16)).enumerate() {
            // ggml scales first, then applies: (d * sc) * q - (dmin * m)
            let dl = d * (sc & 0xF) as f32;
            let ml = dmin * (sc >> 4) as f32;
            // group g: half g / 8, bit pair (g % 8) / 2, bytes 0..15 or 16..31
            let qs = &b.qs[g / 8 * 32 + g % 2 * 16..][..16];
            let shift = (g % 8) / 2 * 2;
            for (y, &q) in y.iter_mut().zip(qs) {
                *y = dl * ((q >> shift) & 3) as f32 - ml;
            }
        }
    }
}
