//! tq2_0: 256 ternary weights, one f16 scale `d`, 2-bit codes `q`; `y = (q - 1) * d`.
//!
//! Layout (`block_tq2_0`, 66 bytes): `qs: [u8; 64]`, `d: f16`. Two halves of 32
//! bytes, each holding 128 elements: element `32l + m` of half `h` is bits
//! `2l..2l+1` of `qs[32h + m]`. Mirrors `cuda/tq2_0.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_tq2_0;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_tq2_0 {}

pub struct TQ2_0;
impl Format for TQ2_0 {
    const TYPE: GgmlType = GgmlType::TQ2_0;
    type Block = block_tq2_0;
    fn decode(b: &block_tq2_0, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        for (qs, y) in b.qs.chunks_exact(32).zip(y.chunks_exact_mut(128)) {
            for (l, y) in y.chunks_exact_mut(32).enumerate() {
                for (y, &q) in y.iter_mut().zip(qs) {
                    *y = (((q >> (2 * l)) & 3) as i32 - 1) as f32 * d;
                }
            }
        }
    }
}
