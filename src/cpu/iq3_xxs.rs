//! iq3_xxs: 256 weights from the 256-entry D4 lattice grid (4 weights an
//! entry), 3.0625 bits each.
//!
//! Layout (`block_iq3_xxs`, 98 bytes): `d: f16`, `qs: [u8; 96]`: 64 grid
//! indices, then 8 little-endian `u32`, one per sub-block of 32 weights, with 4
//! 7-bit sign indices (bits `7l..7l+7`) and a 4-bit scale `s` (bits 28..32).
//! Group `l` (8 weights) of sub-block `ib32` takes grid entries
//! `qs[8 * ib32 + 2l]` (weights 0..4) and `qs[8 * ib32 + 2l + 1]` (weights
//! 4..8). `db = d * (0.5 + s) * 0.5`; weight `j` is `db * grid[j] * (±1)`, minus
//! where bit `j` of `KSIGNS_IQ2XS[sign index]` is set. Mirrors `cuda/iq3_xxs.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_iq3_xxs;
use crate::tables::{IQ3XXS_GRID, KSIGNS_IQ2XS};
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_iq3_xxs {}

pub struct IQ3_XXS;
impl Format for IQ3_XXS {
    const TYPE: GgmlType = GgmlType::IQ3_XXS;
    type Block = block_iq3_xxs;
    fn decode(b: &block_iq3_xxs, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        let (qs, scales_and_signs) = b.qs.split_at(64);
        for (ib32, y) in y.chunks_exact_mut(32).enumerate() {
            let a = &scales_and_signs[4 * ib32..4 * ib32 + 4];
            let aux = u32::from_le_bytes([a[0], a[1], a[2], a[3]]);
            // ggml's order: (d * (0.5 + s)) * 0.5, all in f32
            let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let signs = KSIGNS_IQ2XS[(aux >> (7 * l)) as usize & 127];
                let grid = [
                    IQ3XXS_GRID[qs[8 * ib32 + 2 * l] as usize],
                    IQ3XXS_GRID[qs[8 * ib32 + 2 * l + 1] as usize],
                ];
                for (j, y) in y.iter_mut().enumerate() {
                    let g = (grid[j / 4] >> (8 * (j % 4))) as u8;
                    let sign = if signs & (1 << j) != 0 { -1.0 } else { 1.0 };
                    *y = db * g as f32 * sign;
                }
            }
        }
    }
}
