//! mxfp4: 32 weights, one E8M0 exponent `e`, 4-bit E2M1 codes `q`;
//! `y = KVALUES_MXFP4[q] * 2^(e - 128)`.
//!
//! `KVALUES_MXFP4` holds the E2M1 values doubled (integers), so the scale is
//! halved to match: ggml's `ggml_e8m0_to_fp32_half`, `2^(e - 127) / 2`, built
//! from its bits (subnormal for `e < 2`). Every product is exact.
//!
//! Layout (`block_mxfp4`, 17 bytes): `e: u8`, `qs: [u8; 16]`, element `j < 16` in
//! the low nibble of `qs[j]` and element `j + 16` in its high nibble (as q4_0).
//! Mirrors `cuda/mxfp4.cu`.

use super::{Format, Pod};
use crate::blocks::block_mxfp4;
use crate::tables::KVALUES_MXFP4;
use crate::types::GgmlType;

/// Half the E8M0 scale `2^(e - 127)`, that is `2^(e - 128)`, exactly.
#[inline(always)]
fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e // 2^-128, 2^-127: f32 subnormals
    } else {
        ((e - 1) as u32) << 23
    };
    f32::from_bits(bits)
}

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_mxfp4 {}

pub struct MXFP4;
impl Format for MXFP4 {
    const TYPE: GgmlType = GgmlType::MXFP4;
    type Block = block_mxfp4;
    fn decode(b: &block_mxfp4, y: &mut [f32]) {
        let d = e8m0_to_f32_half(b.e);
        for (j, &q) in b.qs.iter().enumerate() {
            y[j] = KVALUES_MXFP4[(q & 0xF) as usize] as f32 * d;
            y[j + 16] = KVALUES_MXFP4[(q >> 4) as usize] as f32 * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e8m0_half_is_two_to_e_minus_128() {
        for e in 0..=255u8 {
            let want = 2f64.powi(e as i32 - 128);
            assert_eq!(e8m0_to_f32_half(e) as f64, want, "e = {e}");
        }
    }
}
