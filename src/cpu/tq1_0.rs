//! tq1_0: 256 ternary weights, one f16 scale `d`; `y = (t - 1) * d`, `t` a trit.
//!
//! Layout (`block_tq1_0`, 54 bytes): `qs: [u8; 48]`, `qh: [u8; 4]`, `d: f16`. A
//! byte holds 5 trits (4 in `qh`) as a base-3 fixed-point fraction: trit `n` of
//! byte `b` is `t = ((b * 3^n mod 256) * 3) >> 8`, the multiplication shifting
//! trit `n` to the top. In output order:
//! - elements `32n + m` (0..160): trit `n` of `qs[m]`, `m < 32`;
//! - elements `160 + 16n + m` (160..240): trit `n` of `qs[32 + m]`, `m < 16`;
//! - elements `240 + 4n + m` (240..256): trit `n` of `qh[m]`, `m < 4`.
//!
//! Mirrors `cuda/tq1_0.cu`.

use super::{Format, Pod, f16_to_f32};
use crate::blocks::block_tq1_0;
use crate::types::GgmlType;

const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// Trit `n` of `byte`, as `t - 1` in {-1, 0, 1}.
#[inline(always)]
fn trit(byte: u8, n: usize) -> i32 {
    let q = byte.wrapping_mul(POW3[n]);
    ((q as u16 * 3) >> 8) as i32 - 1
}

/// Writes trit `n` of every byte of `src` for `n < n_trits`, trit-major, to `y`.
#[inline(always)]
fn decode_group(src: &[u8], n_trits: usize, d: f32, y: &mut [f32]) {
    for (n, y) in y.chunks_exact_mut(src.len()).take(n_trits).enumerate() {
        for (y, &q) in y.iter_mut().zip(src) {
            *y = trit(q, n) as f32 * d;
        }
    }
}

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_tq1_0 {}

pub struct TQ1_0;
impl Format for TQ1_0 {
    const TYPE: GgmlType = GgmlType::TQ1_0;
    type Block = block_tq1_0;
    fn decode(b: &block_tq1_0, y: &mut [f32]) {
        let d = f16_to_f32(b.d);
        decode_group(&b.qs[..32], 5, d, &mut y[..160]);
        decode_group(&b.qs[32..], 5, d, &mut y[160..240]);
        decode_group(&b.qh, 4, d, &mut y[240..256]);
    }
}
