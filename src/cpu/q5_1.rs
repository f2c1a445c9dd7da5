//! q5_1: 32 weights, an f16 scale `d` and min `m`, 5-bit codes `q`; `y = q * d + m`.
//!
//! Layout (`block_q5_1`, 24 bytes): `d: f16`, `m: f16`, `qh: [u8; 4]`,
//! `qs: [u8; 16]`, the codes packed as q5_0's. The product and the sum round
//! separately, in that order, as in ggml. Mirrors `cuda/q5_1.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_q5_1;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_q5_1 {}

pub struct Q5_1;
impl Format for Q5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    type Block = block_q5_1;
    fn decode(b: &block_q5_1, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        let m = f16_to_f32(b.m);
        let qh = u32::from_le_bytes(b.qh);
        for (j, &q) in b.qs.iter().enumerate() {
            let q0 = (q & 0xF) as u32 | ((qh >> j) & 1) << 4;
            let q1 = (q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
            y[j] = q0 as f32 * d + m;
            y[j + 16] = q1 as f32 * d + m;
        }
    }
}
