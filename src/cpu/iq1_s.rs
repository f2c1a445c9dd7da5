//! iq1_s: 256 weights from the 2048-entry ternary grid (8 weights of -1, 0, 1
//! an entry) plus a shift, 1.5625 bits each.
//!
//! Layout (`block_iq1_s`, 50 bytes): `d: f16`, `qs: [u8; 32]`, `qh: [u16; 8]`.
//! Sub-block `ib` (32 weights) has `qh[ib]`: bits `3l..3l+3` are the high bits
//! of group `l`'s grid index `qs[4 * ib + l] | hi << 8`, bits 12..15 a 3-bit
//! scale `s`, bit 15 the sign of the shift. `dl = d * (2s + 1)` (an integer,
//! then one f32 product), `delta = ∓IQ1S_DELTA` (0.125); weight `j` of a group
//! is `dl * (grid[j] + delta)`. Mirrors `cuda/iq1_s.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_iq1_s;
use crate::tables::IQ1S_GRID;
use crate::types::GgmlType;

/// ggml's IQ1S_DELTA: the shift added to every grid value.
const IQ1S_DELTA: f32 = 0.125;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_iq1_s {}

pub struct IQ1_S;
impl Format for IQ1_S {
    const TYPE: GgmlType = GgmlType::IQ1_S;
    type Block = block_iq1_s;
    fn decode(b: &block_iq1_s, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            let qh = b.qh[ib];
            let dl = d * (2 * ((qh >> 12) & 7) as i32 + 1) as f32;
            let delta = if qh & 0x8000 != 0 {
                -IQ1S_DELTA
            } else {
                IQ1S_DELTA
            };
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let hi = (qh as usize >> (3 * l)) & 7;
                let grid = IQ1S_GRID[b.qs[4 * ib + l] as usize | hi << 8];
                for (j, y) in y.iter_mut().enumerate() {
                    let g = (grid >> (8 * j)) as u8 as i8;
                    *y = dl * (g as f32 + delta);
                }
            }
        }
    }
}
