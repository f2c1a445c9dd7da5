//! iq1_m: 256 weights from the 2048-entry ternary grid (8 weights of -1, 0, 1
//! an entry) plus a shift per group, 1.75 bits each.
//!
//! Layout (`block_iq1_m`, 56 bytes): `qs: [u8; 32]`, `qh: [u8; 16]`,
//! `scales: [u8; 8]`, the scales read as 4 little-endian `u16` `sc[0..4]`.
//! The f16 super-block scale `d` has no field of its own: its 4 nibbles are the
//! top nibbles of `sc[0]` (lowest) .. `sc[3]` (highest). Group `l` (8 weights)
//! of sub-block `ib` (32 weights) uses the nibble `h = qh[2 * ib + l / 2] >>
//! 4 * (l % 2)`: grid index `qs[4 * ib + l] | (h & 7) << 8`, shift
//! `delta = ∓IQ1S_DELTA` (0.125) by bit 3 of `h`. Its 3-bit scale `s` is bits
//! `6 * (ib % 2) + 3 * (l / 2)` of `sc[ib / 2]`; `dl = d * (2s + 1)` (an
//! integer, then one f32 product); weight `j` is `dl * (grid[j] + delta)`.
//! Mirrors `cuda/iq1_m.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_iq1_m;
use crate::tables::IQ1S_GRID;
use crate::types::GgmlType;

/// ggml's IQ1S_DELTA: the shift added to every grid value.
const IQ1S_DELTA: f32 = 0.125;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_iq1_m {}

pub struct IQ1_M;
impl Format for IQ1_M {
    const TYPE: GgmlType = GgmlType::IQ1_M;
    type Block = block_iq1_m;
    fn decode(b: &block_iq1_m, y: &mut [f32]) {
        let sc: [u16; 4] =
            std::array::from_fn(|k| u16::from_le_bytes([b.scales[2 * k], b.scales[2 * k + 1]]));
        let d_bits =
            (sc[0] >> 12) | ((sc[1] >> 8) & 0x00F0) | ((sc[2] >> 4) & 0x0F00) | (sc[3] & 0xF000);
        let d = f16_to_f32(d_bits);
        for (ib, y) in y.chunks_exact_mut(32).enumerate() {
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let s = (sc[ib / 2] >> (6 * (ib % 2) + 3 * (l / 2))) & 7;
                let dl = d * (2 * s as i32 + 1) as f32;
                let h = b.qh[2 * ib + l / 2] >> (4 * (l % 2));
                let grid = IQ1S_GRID[b.qs[4 * ib + l] as usize | ((h & 7) as usize) << 8];
                let delta = if h & 8 != 0 { -IQ1S_DELTA } else { IQ1S_DELTA };
                for (j, y) in y.iter_mut().enumerate() {
                    let g = (grid >> (8 * j)) as u8 as i8;
                    *y = dl * (g as f32 + delta);
                }
            }
        }
    }
}
