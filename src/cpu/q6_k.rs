//! q6_k: 256 weights in 16 groups of 16; 6-bit codes `q` (stored offset by 32)
//! split into 4 low bits and 2 high bits; each group has a signed 8-bit scale
//! `sc`, scaled by the f16 `d`: `y = (d * sc) * (q - 32)`.
//!
//! Layout (`block_q6_K`, 210 bytes): `ql: [u8; 128]`, `qh: [u8; 64]`,
//! `scales: [i8; 16]` (one per group), `d: f16`. Each half of the block (128
//! weights) owns 64 bytes of `ql` and 32 of `qh`. Within a half, weight
//! `32k + l` (`k < 4`, `l < 32`) has its low 4 bits in nibble `k / 2` of
//! `ql[32 * (k % 2) + l]` and its high 2 bits at bit `2k` of `qh[l]`.
//! Mirrors `cuda/q6_k.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_q6_K;
use crate::types::GgmlType;

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_q6_K {}

pub struct Q6_K;
impl Format for Q6_K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    type Block = block_q6_K;
    fn decode(b: &block_q6_K, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        for (g, (&sc, y)) in b.scales.iter().zip(y.chunks_exact_mut(16)).enumerate() {
            // ggml writes d * sc * q: (d * sc) first
            let dl = d * sc as f32;
            // group g: half g / 8, quarter k = (g % 8) / 2, bytes l in 0..15 or 16..31
            let (half, k, off) = (g / 8, (g % 8) / 2, g % 2 * 16);
            let ql = &b.ql[half * 64 + k % 2 * 32 + off..][..16];
            let qh = &b.qh[half * 32 + off..][..16];
            let (lshift, hshift) = (k / 2 * 4, k * 2);
            for ((y, &lo), &hi) in y.iter_mut().zip(ql).zip(qh) {
                let q = (((lo >> lshift) & 0xF) | ((hi >> hshift) & 3) << 4) as i32 - 32;
                *y = dl * q as f32;
            }
        }
    }
}
