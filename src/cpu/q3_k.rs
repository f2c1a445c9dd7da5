//! q3_k: 256 weights in 16 groups of 16; 3-bit codes split into 2 low bits and
//! a high bit `h`; each group has a 6-bit scale `sc` (stored offset by 32),
//! scaled by the f16 `d`: `y = (d * (sc - 32)) * (q_low - (h ? 0 : 4))`.
//!
//! Layout (`block_q3_K`, 110 bytes): `hmask: [u8; 32]`, `qs: [u8; 64]`,
//! `scales: [u8; 12]`, `d: f16`.
//! - `qs`: each half of the block (128 weights) owns 32 bytes: bits `2k..2k+1`
//!   of its byte `l` hold the low bits of weight `32k + l` of the half.
//! - `hmask`: bit `i` of byte `l` holds the high bit of weight `32i + l`.
//! - `scales`: group `g`'s low 4 bits in nibble `g / 8` of `scales[g % 8]`, its
//!   top 2 bits at bit `2 * (g / 4)` of `scales[8 + g % 4]`.
//!
//! Mirrors `cuda/q3_k.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_q3_K;
use crate::types::GgmlType;

/// Group `g`'s scale, offset removed.
#[inline(always)]
fn group_scale(scales: &[u8; 12], g: usize) -> i32 {
    let low = (scales[g % 8] >> (4 * (g / 8))) & 0xF;
    let high = (scales[8 + g % 4] >> (2 * (g / 4))) & 3;
    (low | high << 4) as i32 - 32
}

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_q3_K {}

pub struct Q3_K;
impl Format for Q3_K {
    const TYPE: GgmlType = GgmlType::Q3_K;
    type Block = block_q3_K;
    fn decode(b: &block_q3_K, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        for (g, y) in y.chunks_exact_mut(16).enumerate() {
            let dl = d * group_scale(&b.scales, g) as f32;
            // group g: half g / 8, bit pair (g % 8) / 2, bytes 0..15 or 16..31;
            // its high bits are bit g / 2 of the same 16 bytes of hmask
            let off = g % 2 * 16;
            let qs = &b.qs[g / 8 * 32 + off..][..16];
            let hm = &b.hmask[off..][..16];
            let shift = (g % 8) / 2 * 2;
            let bit = 1u8 << (g / 2);
            for ((y, &q), &h) in y.iter_mut().zip(qs).zip(hm) {
                let q = ((q >> shift) & 3) as i32 - if h & bit != 0 { 0 } else { 4 };
                *y = dl * q as f32;
            }
        }
    }
}
