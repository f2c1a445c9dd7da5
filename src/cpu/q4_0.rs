//! q4_0: 32 weights, one f16 scale `d`, 4-bit codes `q`; `y = (q - 8) * d`.
//!
//! Layout (`block_q4_0`, 18 bytes): `d: f16`, `qs: [u8; 16]`, element `j < 16`
//! in the low nibble of `qs[j]` and element `j + 16` in its high nibble.
//! Mirrors `cuda/q4_0.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_q4_0;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_q4_0 {}

pub struct Q4_0;
impl Format for Q4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    type Block = block_q4_0;
    fn decode(b: &block_q4_0, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        for (j, &q) in b.qs.iter().enumerate() {
            y[j] = ((q & 0xF) as i32 - 8) as f32 * d;
            y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}
