//! nvfp4: 64 weights in 4 sub-blocks of 16, one UE4M3 scale per sub-block, 4-bit
//! E2M1 codes `q`; `y = KVALUES_MXFP4[q] * ue4m3(d[s]) / 2`.
//!
//! `KVALUES_MXFP4` holds the E2M1 values doubled, so the scale is halved to match,
//! as ggml's `ggml_ue4m3_to_fp32` does. UE4M3: bits 6..3 exponent (bias 7), bits
//! 2..0 mantissa, bit 7 ignored; `0` and `0x7F` (NaN) decode to 0. Every value,
//! and every product, is exact in f32, so it is built directly:
//! `(8 + man) * 2^(exp - 11)`, or `man * 2^-10` for `exp == 0`.
//!
//! Layout (`block_nvfp4`, 36 bytes): `d: [u8; 4]`, `qs: [u8; 32]`. Sub-block `s`
//! is `qs[8s..8s+8]`: its elements `0..8` in the low nibbles, `8..16` in the high
//! ones. Mirrors `cuda/nvfp4.cu`.

use super::{Format, Pod};
use crate::blocks::block_nvfp4;
use crate::tables::KVALUES_MXFP4;
use crate::types::GgmlType;

/// Half the UE4M3 value of `x`, exactly.
#[inline(always)]
fn ue4m3_to_f32_half(x: u8) -> f32 {
    if x == 0 || x == 0x7F {
        return 0.0;
    }
    let exp = ((x >> 3) & 0xF) as u32;
    let man = (x & 7) as f32;
    if exp == 0 {
        man * (1.0 / 1024.0)
    } else {
        (8.0 + man) * f32::from_bits((exp + 116) << 23)
    }
}

// SAFETY: `cuda/blocks.h` lays the block out as integers and arrays of
// them with no padding (src/blocks.rs pins its size and offsets at compile time).
unsafe impl Pod for block_nvfp4 {}

pub struct NVFP4;
impl Format for NVFP4 {
    const TYPE: GgmlType = GgmlType::NVFP4;
    type Block = block_nvfp4;
    fn decode(b: &block_nvfp4, y: &mut [f32]) {
        let sub_blocks = b.qs.chunks_exact(8).zip(y.chunks_exact_mut(16));
        for (&ds, (qs, y)) in b.d.iter().zip(sub_blocks) {
            let d = ue4m3_to_f32_half(ds);
            for (j, &q) in qs.iter().enumerate() {
                y[j] = KVALUES_MXFP4[(q & 0xF) as usize] as f32 * d;
                y[j + 8] = KVALUES_MXFP4[(q >> 4) as usize] as f32 * d;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's formula, transcribed: `ldexp(1 + man / 8, exp - 7) * 0.5`.
    fn ue4m3_ggml(x: u8) -> f64 {
        if x == 0 || x == 0x7F {
            return 0.0;
        }
        let (exp, man) = (((x >> 3) & 0xF) as i32, (x & 7) as f64);
        let raw = if exp == 0 {
            man * 2f64.powi(-9)
        } else {
            (1.0 + man / 8.0) * 2f64.powi(exp - 7)
        };
        raw * 0.5
    }

    #[test]
    fn ue4m3_half_matches_ggml_for_every_byte() {
        for x in 0..=255u8 {
            let got = ue4m3_to_f32_half(x);
            assert_eq!(got as f64, ue4m3_ggml(x), "x = {x:#04x}");
            assert!(got.is_sign_positive(), "x = {x:#04x}");
        }
    }
}
