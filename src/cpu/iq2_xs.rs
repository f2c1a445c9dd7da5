//! iq2_xs: 256 weights from the 512-entry E8 lattice grid, 2.3125 bits each.
//!
//! Layout (`block_iq2_xs`, 74 bytes): `d: f16`, `qs: [u16; 32]`, `scales: [u8; 8]`.
//! `qs[4 * ib32 + l]` codes group `l` (8 weights) of sub-block `ib32` (32
//! weights): grid index in its low 9 bits, sign index in its top 7.
//! `scales[ib32]` holds two 4-bit scales `s`: the low nibble for groups 0, 1,
//! the high one for groups 2, 3. `db = d * (0.5 + s) * 0.25`; weight `j` of a
//! group is `db * grid[j] * (±1)`, minus where bit `j` of `KSIGNS_IQ2XS[sign index]`
//! is set. Mirrors `cuda/iq2_xs.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_iq2_xs;
use crate::tables::{IQ2XS_GRID, KSIGNS_IQ2XS};
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_iq2_xs {}

pub struct IQ2_XS;
impl Format for IQ2_XS {
    const TYPE: GgmlType = GgmlType::IQ2_XS;
    type Block = block_iq2_xs;
    fn decode(b: &block_iq2_xs, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        for (ib32, y) in y.chunks_exact_mut(32).enumerate() {
            let sc = b.scales[ib32];
            // ggml's order: (d * (0.5 + s)) * 0.25, all in f32
            let db = [
                d * (0.5 + (sc & 0xF) as f32) * 0.25,
                d * (0.5 + (sc >> 4) as f32) * 0.25,
            ];
            for (l, y) in y.chunks_exact_mut(8).enumerate() {
                let q = b.qs[4 * ib32 + l];
                let grid = IQ2XS_GRID[(q & 511) as usize];
                let signs = KSIGNS_IQ2XS[(q >> 9) as usize];
                for (j, y) in y.iter_mut().enumerate() {
                    let g = (grid >> (8 * j)) as u8;
                    let sign = if signs & (1 << j) != 0 { -1.0 } else { 1.0 };
                    *y = db[l / 2] * g as f32 * sign;
                }
            }
        }
    }
}
