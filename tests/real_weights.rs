//! Every tensor of the real-weights fixture (all-MiniLM-L6-v2 quantized by ggml
//! into every type), decoded by the CPU reference, the threaded fast path and the
//! host-emulated CUDA kernels, must match ggml's own output to the bit, in f32,
//! and that value rounded to nearest even in f16 and bf16.

mod common;

use common::*;
#[cfg(feature = "cuda")]
use gguf_dequant::emulated;
use gguf_dequant::{cpu, GgmlType};
use half::{bf16, f16};

fn check_all_paths(t: &RealTensor) {
    let n = t.expected.len();
    let want16 = to_f16(&t.expected);
    let wantb16 = to_bf16(&t.expected);

    let mut ref32 = vec![f32::NAN; n];
    cpu::dequantize_reference(t.ty, &t.quant, &mut ref32).unwrap();
    assert_bits_eq(&format!("{} reference f32", t.name), &ref32, &t.expected);

    let fast: Vec<f32> = cpu::dequantize_to_vec(t.ty, &t.quant).unwrap();
    assert_bits_eq(&format!("{} fast f32", t.name), &fast, &t.expected);
    let fast16: Vec<f16> = cpu::dequantize_to_vec(t.ty, &t.quant).unwrap();
    assert_bits_eq(&format!("{} fast f16", t.name), &fast16, &want16);
    let fastb16: Vec<bf16> = cpu::dequantize_to_vec(t.ty, &t.quant).unwrap();
    assert_bits_eq(&format!("{} fast bf16", t.name), &fastb16, &wantb16);

    #[cfg(feature = "cuda")]
    {
        let mut emu32 = vec![f32::NAN; n];
        emulated::dequantize(t.ty, &t.quant, &mut emu32).unwrap();
        assert_bits_eq(&format!("{} emulated f32", t.name), &emu32, &t.expected);
        let mut emu16 = vec![f16::NAN; n];
        emulated::dequantize(t.ty, &t.quant, &mut emu16).unwrap();
        assert_bits_eq(&format!("{} emulated f16", t.name), &emu16, &want16);
        let mut emub16 = vec![bf16::NAN; n];
        emulated::dequantize(t.ty, &t.quant, &mut emub16).unwrap();
        assert_bits_eq(&format!("{} emulated bf16", t.name), &emub16, &wantb16);
    }
}

fn check_type(ty: GgmlType) {
    let all = real_tensors();
    let t = all
        .iter()
        .find(|t| t.ty == ty)
        .unwrap_or_else(|| panic!("fixture has no {ty} tensor"));
    assert_eq!(t.ne, vec![1536, 64]);
    check_all_paths(t);
}

#[test]
fn fixture_covers_every_dequantizable_type() {
    let all = real_tensors();
    for ty in GgmlType::dequantizable() {
        assert!(all.iter().any(|t| t.ty == ty), "fixture lacks {ty}");
    }
    assert_eq!(all.len(), 28);
}

/// One test per format of the list (`src/formats.rs`), named after it.
macro_rules! per_type {
    ($( $file:ident { $( $ty:ident => $name:ident : $parts:literal $(/ $tail:ident)? ),+ } )*) => {
        mod each_type {
            use gguf_dequant::GgmlType;
            $( $( #[test] fn $name() { super::check_type(GgmlType::$ty); } )+ )*
        }
    };
}
gguf_dequant::for_each_format!(per_type);
