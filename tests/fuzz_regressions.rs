//! Inputs the fuzzers found, kept as tests: each file in
//! `tests/corpus/fuzz-regressions/` named `cpu_decoders-*` is a `cpu_decoders`
//! input (a type id byte, then blocks), checked the way that target checks it.
//!
//! - `cpu_decoders-iq2_s-nan-sign`: a NaN block scale; the SIMD path applied the
//!   weights' signs to the NaN differently from the scalar reference (-NaN for
//!   +NaN). NaN signs and payloads are outside the contract (see the `cpu`
//!   module), NaN positions are not.

mod common;

use common::*;
use gguf_dequant::{cpu, GgmlType};
use half::{bf16, f16};

#[test]
fn cpu_decoder_regressions() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/fuzz-regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("cpu_decoders-") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        let ty = GgmlType::from_id(data[0] as u32).expect("a type id");
        let rest = &data[1..];
        let src = &rest[..rest.len() / ty.block_bytes() * ty.block_bytes()];
        let mut want = vec![0f32; src.len() / ty.block_bytes() * ty.block_elems()];
        cpu::dequantize_reference(ty, src, &mut want).unwrap();
        let got: Vec<f32> = cpu::dequantize_to_vec(ty, src).unwrap();
        assert_same_values(&format!("{name} f32"), &got, &want);
        let got: Vec<f16> = cpu::dequantize_to_vec(ty, src).unwrap();
        assert_same_values(&format!("{name} f16"), &got, &to_f16(&want));
        let got: Vec<bf16> = cpu::dequantize_to_vec(ty, src).unwrap();
        assert_same_values(&format!("{name} bf16"), &got, &to_bf16(&want));
        n += 1;
    }
    assert!(n >= 1);
}
