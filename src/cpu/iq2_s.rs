//! iq2_s: 256 weights from the 1024-entry E8 lattice grid, 2.5625 bits each,
//! with explicit sign bytes.
//!
//! Layout (`block_iq2_s`, 82 bytes): `d: f16`, `qs: [u8; 64]`, `qh: [u8; 8]`,
//! `scales: [u8; 8]`. Group `l` (8 weights) of sub-block `ib32` (32 weights)
//! has grid index `qs[4 * ib32 + l] | ((qh[ib32] >> 2l) & 3) << 8` and sign
//! byte `qs[32 + 4 * ib32 + l]` (bit `j` set: weight `j` negated).
//! `scales[ib32]` holds two 4-bit scales `s`: the low nibble for groups 0, 1,
//! the high one for groups 2, 3. `db = d * (0.5 + s) * 0.25`; weight `j` is
//! `db * grid[j] * (±1)`. Mirrors `cuda/iq2_s.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_iq2_s;
use crate::tables::IQ2S_GRID;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_iq2_s {}

pub struct IQ2_S;
impl Format for IQ2_S {
    const TYPE: GgmlType = GgmlType::IQ2_S;
    type Block = block_iq2_s;
    fn decode(b: &block_iq2_s, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        let (qs, signs) = b.qs.split_at(32);
        for (ib32, y) in y.chunks_exact_mut(32).enumerate() {
            let sc = b.scales[ib32];
            // ggml's order: (d * (0.5 + s)) * 0.25, all in f32
            let db = [
                d * (0.5 + (sc & 0xF) as f32) * 0.25,
                d * (0.5 + (sc >> 4) as f32) * 0.25,
            ];
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let hi = (b.qh[ib32] as usize >> (2 * l)) & 3;
                let grid = IQ2S_GRID[qs[4 * ib32 + l] as usize | hi << 8];
                let s = signs[4 * ib32 + l];
                for (j, y) in y.iter_mut().enumerate() {
                    let g = (grid >> (8 * j)) as u8;
                    let sign = if s & (1 << j) != 0 { -1.0 } else { 1.0 };
                    *y = db[l / 2] * g as f32 * sign;
                }
            }
        }
    }
}
