//! Every tensor of the real-weights fixture (all-MiniLM-L6-v2 quantized by ggml
//! into every type), decoded by the CPU reference, the threaded fast path and the
//! host-emulated CUDA kernels, must match ggml's own output to the bit, in f32,
//! and that value rounded to nearest even in f16 and bf16.

mod common;

use common::*;
use gguf_dequant::{cpu, emulated, GgmlType};
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

macro_rules! per_type {
    ($($test:ident: $ty:ident),* $(,)?) => {
        $( #[test] fn $test() { check_type(GgmlType::$ty); } )*
    };
}

per_type! {
    f32: F32, f16_: F16, bf16_: BF16,
    q4_0: Q4_0, q4_1: Q4_1, q5_0: Q5_0, q5_1: Q5_1, q8_0: Q8_0, q1_0: Q1_0, q2_0: Q2_0,
    q2_k: Q2_K, q3_k: Q3_K, q4_k: Q4_K, q5_k: Q5_K, q6_k: Q6_K,
    iq2_xxs: IQ2_XXS, iq2_xs: IQ2_XS, iq2_s: IQ2_S, iq3_xxs: IQ3_XXS, iq3_s: IQ3_S,
    iq1_s: IQ1_S, iq1_m: IQ1_M, iq4_nl: IQ4_NL, iq4_xs: IQ4_XS,
    tq1_0: TQ1_0, tq2_0: TQ2_0, mxfp4: MXFP4, nvfp4: NVFP4,
}
