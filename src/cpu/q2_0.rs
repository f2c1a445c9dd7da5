//! q2_0: 64 weights, one f16 scale `d`, 2-bit codes `c`; `y = (c - 1) * d`.
//!
//! Layout (`block_q2_0`, 18 bytes): `d: f16`, `qs: [u8; 16]`, element `j` in bits
//! `2 * (j % 4)` and up of `qs[j / 4]`. Mirrors `cuda/q2_0.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_q2_0;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_q2_0 {}

pub struct Q2_0;
impl Format for Q2_0 {
    const TYPE: GgmlType = GgmlType::Q2_0;
    type Block = block_q2_0;
    fn decode(b: &block_q2_0, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        for (&q, y) in b.qs.iter().zip(y.chunks_exact_mut(4)) {
            for (i, y) in y.iter_mut().enumerate() {
                let c = (q >> (2 * i)) & 3;
                *y = (c as i32 - 1) as f32 * d;
            }
        }
    }
}
