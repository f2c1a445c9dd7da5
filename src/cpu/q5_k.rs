//! q5_k: 256 weights in 8 sub-blocks of 32; 5-bit codes `q` split into 4 low
//! bits and a high bit; each sub-block has a 6-bit scale `sc` and a 6-bit min
//! `m`, themselves scaled by the f16 `d` and `dmin`: `y = (d * sc) * q - dmin * m`.
//!
//! Layout (`block_q5_K`, 176 bytes): `d: f16`, `dmin: f16`, `scales: [u8; 12]`
//! (the packed scales and mins, see [`scale_min_k4`]), `qh: [u8; 32]`,
//! `qs: [u8; 128]`. Sub-blocks `2i` and `2i + 1` share the 32 bytes
//! `qs[32i..32i + 32]`: the first takes the low nibbles, the second the high
//! ones. Bit `s` of `qh[l]` is the high bit (worth 16) of weight `l` of
//! sub-block `s`.
//! Mirrors `cuda/q5_k.cu`.

use super::k_common::scale_min_k4;
use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_q5_K;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_q5_K {}

pub struct Q5_K;
impl Format for Q5_K {
    const TYPE: GgmlType = GgmlType::Q5_K;
    type Block = block_q5_K;
    fn decode(b: &block_q5_K, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        let dmin = f16_to_f32(b.dmin);
        for (s, y) in y.chunks_exact_mut(32).enumerate() {
            let (sc, m) = scale_min_k4(s, &b.scales);
            // ggml scales first, then applies: (d * sc) * q - (dmin * m)
            let d1 = d * sc as f32;
            let m1 = dmin * m as f32;
            let qs = &b.qs[s / 2 * 32..][..32];
            let shift = s % 2 * 4;
            for ((y, &q), &h) in y.iter_mut().zip(qs).zip(&b.qh) {
                let q = ((q >> shift) & 0xF) + if h & (1 << s) != 0 { 16 } else { 0 };
                *y = d1 * q as f32 - m1;
            }
        }
    }
}
