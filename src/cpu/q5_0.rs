//! q5_0: 32 weights, one f16 scale `d`, 5-bit codes `q`; `y = (q - 16) * d`.
//!
//! Layout (`block_q5_0`, 22 bytes): `d: f16`, `qh: [u8; 4]`, `qs: [u8; 16]`. The
//! low 4 bits of element `j < 16` are the low nibble of `qs[j]`, those of element
//! `j + 16` its high nibble (as q4_0); the 5th bit of element `e` is bit `e` of
//! `qh` read as a little-endian u32. Mirrors `cuda/q5_0.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_q5_0;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_q5_0 {}

pub struct Q5_0;
impl Format for Q5_0 {
    const TYPE: GgmlType = GgmlType::Q5_0;
    type Block = block_q5_0;
    fn decode(b: &block_q5_0, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        let qh = u32::from_le_bytes(b.qh);
        for (j, &q) in b.qs.iter().enumerate() {
            let q0 = (q & 0xF) as u32 | ((qh >> j) & 1) << 4;
            let q1 = (q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
            y[j] = (q0 as i32 - 16) as f32 * d;
            y[j + 16] = (q1 as i32 - 16) as f32 * d;
        }
    }
}
