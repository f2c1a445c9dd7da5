//! q4_1: 32 weights, an f16 scale `d` and min `m`, 4-bit codes `q`; `y = q * d + m`.
//!
//! Layout (`block_q4_1`, 20 bytes): `d: f16`, `m: f16`, `qs: [u8; 16]`, element
//! `j < 16` in the low nibble of `qs[j]` and element `j + 16` in its high nibble.
//! The product and the sum round separately, in that order, as in ggml.
//! Mirrors `cuda/q4_1.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_q4_1;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_q4_1 {}

pub struct Q4_1;
impl Format for Q4_1 {
    const TYPE: GgmlType = GgmlType::Q4_1;
    type Block = block_q4_1;
    fn decode(b: &block_q4_1, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        let m = f16_to_f32(b.m);
        for (j, &q) in b.qs.iter().enumerate() {
            y[j] = (q & 0xF) as f32 * d + m;
            y[j + 16] = (q >> 4) as f32 * d + m;
        }
    }
}
