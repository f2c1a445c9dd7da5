//! iq4_xs: 256 weights in 8 sub-blocks of 32, one f16 scale `d`, a 6-bit scale
//! `ls` per sub-block, 4-bit indices `q` into `KVALUES_IQ4NL`;
//! `y = (d * (ls - 32)) * KVALUES_IQ4NL[q]`, rounded at each product as in ggml.
//!
//! Layout (`block_iq4_xs`, 136 bytes): `d: f16`, `scales_h: u16` (bits `2ib..2ib+1`:
//! high 2 bits of `ls` of sub-block `ib`), `scales_l: [u8; 4]` (nibble `ib % 2` of
//! `scales_l[ib / 2]`: its low 4 bits), `qs: [u8; 128]`, 16 bytes per sub-block
//! packed as iq4_nl's. Mirrors `cuda/iq4_xs.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_iq4_xs;
use crate::tables::KVALUES_IQ4NL;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_iq4_xs {}

pub struct IQ4_XS;
impl Format for IQ4_XS {
    const TYPE: GgmlType = GgmlType::IQ4_XS;
    type Block = block_iq4_xs;
    fn decode(b: &block_iq4_xs, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        let sub_blocks = b.qs.chunks_exact(16).zip(y.chunks_exact_mut(32));
        for (ib, (qs, y)) in sub_blocks.enumerate() {
            let ls = ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) as i32
                | (((b.scales_h >> (2 * ib)) & 3) << 4) as i32;
            let dl = d * (ls - 32) as f32;
            for (j, &q) in qs.iter().enumerate() {
                y[j] = dl * KVALUES_IQ4NL[(q & 0xF) as usize] as f32;
                y[j + 16] = dl * KVALUES_IQ4NL[(q >> 4) as usize] as f32;
            }
        }
    }
}
