//! Arbitrary bytes parsed as GGUF, then every tensor decoded as the CLI's
//! `convert` would: to f32, f16 and bf16 for every decodable type (the list
//! of formats); types ggml cannot dequantize must give
//! `Error::Unsupported`. No input may panic.

#![no_main]

mod common;

use std::sync::OnceLock;

use gguf_dequant::gguf::GgufFile;
use gguf_dequant::{cpu, Error, GgmlType};
use half::{bf16, f16};
use libfuzzer_sys::fuzz_target;

static TYPES: OnceLock<Vec<GgmlType>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let types = TYPES.get_or_init(common::ready_types);
    let Ok(f) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    for t in f.tensors() {
        let src = f.tensor_data(t).unwrap();
        if !t.ty.is_dequantizable() {
            let r = cpu::dequantize_to_vec::<f32>(t.ty, src).map_err(|e| e.for_tensor(&t.name));
            assert!(
                matches!(r, Err(Error::Unsupported { tensor: Some(ref n), ty }) if *n == t.name && ty == t.ty),
                "{}: {:?}",
                t.name,
                r.err()
            );
            continue;
        }
        if !types.contains(&t.ty) {
            continue; // its decoder is still a placeholder
        }
        let a: Vec<f32> = cpu::dequantize_to_vec(t.ty, src).unwrap();
        let b: Vec<f16> = cpu::dequantize_to_vec(t.ty, src).unwrap();
        let c: Vec<bf16> = cpu::dequantize_to_vec(t.ty, src).unwrap();
        assert_eq!(a.len() as u64, t.n_elems);
        assert_eq!(b.len() as u64, t.n_elems);
        assert_eq!(c.len() as u64, t.n_elems);
    }
});
