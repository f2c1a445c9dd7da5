//! iq4_nl: 32 weights, one f16 scale `d`, 4-bit indices `q` into the non-linear
//! table `KVALUES_IQ4NL`; `y = d * KVALUES_IQ4NL[q]`.
//!
//! Layout (`block_iq4_nl`, 18 bytes): `d: f16`, `qs: [u8; 16]`, element `j < 16`
//! in the low nibble of `qs[j]` and element `j + 16` in its high nibble (as q4_0).
//! Mirrors `cuda/iq4_nl.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_iq4_nl;
use crate::tables::KVALUES_IQ4NL;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_iq4_nl {}

pub struct IQ4_NL;
impl Format for IQ4_NL {
    const TYPE: GgmlType = GgmlType::IQ4_NL;
    type Block = block_iq4_nl;
    fn decode(b: &block_iq4_nl, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        for (j, &q) in b.qs.iter().enumerate() {
            y[j] = d * KVALUES_IQ4NL[(q & 0xF) as usize] as f32;
            y[j + 16] = d * KVALUES_IQ4NL[(q >> 4) as usize] as f32;
        }
    }
}
