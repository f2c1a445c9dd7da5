//! iq3_s: 256 weights from the 512-entry D4 lattice grid (4 weights an entry),
//! 3.4375 bits each, with explicit sign bytes.
//!
//! Layout (`block_iq3_s`, 110 bytes): `d: f16`, `qs: [u8; 64]`, `qh: [u8; 8]`,
//! `signs: [u8; 32]`, `scales: [u8; 4]`. Group `l` (8 weights) of sub-block
//! `ib32` (32 weights) takes grid entries `qs[8 * ib32 + 2l + h] | ((qh[ib32] >>
//! (2l + h)) & 1) << 8` for weights `4h..4h+4`, and sign byte
//! `signs[4 * ib32 + l]` (bit `j` set: weight `j` negated). The 4-bit scale `s`
//! of sub-block `ib32` is nibble `ib32 % 2` of `scales[ib32 / 2]`;
//! `db = d * (1 + 2s)` (an integer, then one f32 product); weight `j` is
//! `db * grid[j] * (±1)`. Mirrors `cuda/iq3_s.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_iq3_s;
use crate::tables::IQ3S_GRID;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_iq3_s {}

pub struct IQ3_S;
impl Format for IQ3_S {
    const TYPE: GgmlType = GgmlType::IQ3_S;
    type Block = block_iq3_s;
    fn decode(b: &block_iq3_s, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        for (ib32, y) in y.chunks_exact_mut(32).enumerate() {
            let s = (b.scales[ib32 / 2] >> (4 * (ib32 % 2))) & 0xF;
            let db = d * (1 + 2 * s as i32) as f32;
            let qh = b.qh[ib32] as usize;
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let grid = [0, 1].map(|h| {
                    let q = 8 * ib32 + 2 * l + h;
                    IQ3S_GRID[b.qs[q] as usize | ((qh >> (2 * l + h)) & 1) << 8]
                });
                let signs = b.signs[4 * ib32 + l];
                for (j, y) in y.iter_mut().enumerate() {
                    let g = (grid[j / 4] >> (8 * (j % 4))) as u8;
                    let sign = if signs & (1 << j) != 0 { -1.0 } else { 1.0 };
                    *y = db * g as f32 * sign;
                }
            }
        }
    }
}
