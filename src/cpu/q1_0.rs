//! q1_0: 128 weights, one f16 scale `d`, one sign bit each; `y = bit ? d : -d`.
//!
//! Layout (`block_q1_0`, 18 bytes): `d: f16`, `qs: [u8; 16]`, element `j` in bit
//! `j % 8` of `qs[j / 8]`. No arithmetic beyond the negation, so the values are
//! `d` and `-d` exactly. Mirrors `cuda/q1_0.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_q1_0;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_q1_0 {}

pub struct Q1_0;
impl Format for Q1_0 {
    const TYPE: GgmlType = GgmlType::Q1_0;
    type Block = block_q1_0;
    fn decode(b: &block_q1_0, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        for (&q, y) in b.qs.iter().zip(y.chunks_exact_mut(8)) {
            for (i, y) in y.iter_mut().enumerate() {
                *y = if (q >> i) & 1 != 0 { d } else { -d };
            }
        }
    }
}
