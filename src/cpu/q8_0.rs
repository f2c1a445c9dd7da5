//! q8_0: 32 weights, one f16 scale `d`, signed 8-bit codes `q`; `y = q * d`.
//!
//! Layout (`block_q8_0`, 34 bytes): `d: f16`, `qs: [i8; 32]`, element `j` in
//! `qs[j]`. Mirrors `cuda/q8_0.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_q8_0;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_q8_0 {}

pub struct Q8_0;
impl Format for Q8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    type Block = block_q8_0;
    fn decode(b: &block_q8_0, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        for (y, &q) in y.iter_mut().zip(&b.qs) {
            *y = q as f32 * d;
        }
    }
}
