//! iq2_xxs: 256 weights from the 256-entry E8 lattice grid, 2.0625 bits each.
//!
//! Layout (`block_iq2_xxs`, 66 bytes): `d: f16`, `qs: [u16; 32]`. Each of the 8
//! sub-blocks of 32 weights owns 4 `u16`, read as two little-endian `u32`:
//! the first holds 4 grid indices (one byte per group of 8 weights), the second
//! 4 7-bit sign indices (bits `7l..7l+7`) and a 4-bit scale `s` (bits 28..32).
//! `db = d * (0.5 + s) * 0.25`; weight `j` of group `l` is
//! `db * grid[j] * (±1)`, minus where bit `j` of `KSIGNS_IQ2XS[sign index]` is set.
//! Mirrors `cuda/iq2_xxs.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_iq2_xxs;
use crate::tables::{IQ2XXS_GRID, KSIGNS_IQ2XS};
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_iq2_xxs {}

pub struct IQ2_XXS;
impl Format for IQ2_XXS {
    const TYPE: GgmlType = GgmlType::IQ2_XXS;
    type Block = block_iq2_xxs;
    fn decode(b: &block_iq2_xxs, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        // sub-block by sub-block: 4 u16 of qs, 32 weights
        for (q, y) in b.qs.chunks_exact(4).zip(y.chunks_exact_mut(32)) {
            let grid_idx = q[0] as u32 | (q[1] as u32) << 16;
            let aux = q[2] as u32 | (q[3] as u32) << 16;
            // ggml's order: (d * (0.5 + s)) * 0.25, all in f32
            let db = d * (0.5 + (aux >> 28) as f32) * 0.25;
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let grid = IQ2XXS_GRID[(grid_idx >> (8 * l)) as usize & 0xFF];
                let signs = KSIGNS_IQ2XS[(aux >> (7 * l)) as usize & 127];
                for (j, y) in y.iter_mut().enumerate() {
                    let g = (grid >> (8 * j)) as u8;
                    let sign = if signs & (1 << j) != 0 { -1.0 } else { 1.0 };
                    *y = db * g as f32 * sign;
                }
            }
        }
    }
}
