//! f32, f16, bf16: one element a "block", widened exactly. Mirrors `cuda/plain.cu`.

use super::{f16_to_f32, Format};
use crate::types::GgmlType;

/// f32, copied as is.
pub struct F32;
impl Format for F32 {
    const TYPE: GgmlType = GgmlType::F32;
    type Block = u32;
    fn decode(b: &u32, y: &mut [f32]) {
        y[0] = f32::from_bits(*b);
    }
}

/// IEEE binary16.
pub struct F16;
impl Format for F16 {
    const TYPE: GgmlType = GgmlType::F16;
    type Block = u16;
    fn decode(b: &u16, y: &mut [f32]) {
        y[0] = f16_to_f32(*b);
    }
}

/// bfloat16: the top 16 bits of an f32.
pub struct BF16;
impl Format for BF16 {
    const TYPE: GgmlType = GgmlType::BF16;
    type Block = u16;
    fn decode(b: &u16, y: &mut [f32]) {
        y[0] = f32::from_bits((*b as u32) << 16);
    }
}
