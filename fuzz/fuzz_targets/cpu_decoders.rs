//! Arbitrary bytes decoded by the CPU decoders: the first byte picks a
//! decodable type: the type of that id if it is one (so seeds keep their
//! type), else one by index; the rest is its blocks.
//! No input may panic; the threaded path must equal the scalar reference to the
//! bit, and f16/bf16 must be that f32 rounded to nearest even, except that a NaN
//! matches any NaN (NaN signs and payloads are not part of the contract: see
//! `cpu` module docs); every SIMD level, streaming into an output at any
//! 4-byte offset from a cache line, must equal it too. Lengths that are
//! not whole blocks, wrong output sizes and undecodable types must be errors.

#![no_main]

mod common;

use std::sync::OnceLock;

use gguf_dequant::{cpu, Error, GgmlType};
use half::{bf16, f16};
use libfuzzer_sys::fuzz_target;

static TYPES: OnceLock<Vec<GgmlType>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let types = TYPES.get_or_init(common::ready_types);
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let ty = GgmlType::from_id(sel.into())
        .filter(|t| types.contains(t))
        .unwrap_or(types[sel as usize % types.len()]);
    let (qk, bb) = (ty.block_elems(), ty.block_bytes());
    let src = &rest[..rest.len() / bb * bb];
    let n = src.len() / bb * qk;

    let mut reference = vec![0f32; n];
    cpu::dequantize_reference(ty, src, &mut reference).unwrap();
    let fast: Vec<f32> = cpu::dequantize_to_vec(ty, src).unwrap();
    assert!(
        fast.iter()
            .zip(&reference)
            .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())),
        "{ty}: threaded and reference f32 differ"
    );
    let h: Vec<f16> = cpu::dequantize_to_vec(ty, src).unwrap();
    assert!(
        h.iter()
            .zip(&reference)
            .all(|(a, b)| a.to_bits() == f16::from_f32(*b).to_bits() || (a.is_nan() && b.is_nan())),
        "{ty}: f16 is not the f32 rounded"
    );
    let b: Vec<bf16> = cpu::dequantize_to_vec(ty, src).unwrap();
    assert!(
        b.iter()
            .zip(&reference)
            .all(|(a, b)| a.to_bits() == bf16::from_f32(*b).to_bits() || (a.is_nan() && b.is_nan())),
        "{ty}: bf16 is not the f32 rounded"
    );

    // every level, forced to stream (the writers that join cache lines),
    // into an output at an offset picked by the input, with the values
    // around it checked untouched
    let offset = (sel as usize / 4) % 16 * 4;
    for level in cpu::Level::available() {
        let mut buf = vec![f32::from_bits(0x7fc0_1234); n + 32];
        let start = buf.as_ptr().align_offset(64) + offset / 4;
        cpu::dequantize_with(level, true, ty, src, &mut buf[start..start + n]).unwrap();
        let got = &buf[start..start + n];
        assert!(
            got.iter()
                .zip(&reference)
                .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())),
            "{ty}: level {} streaming at offset {offset} differs from the reference",
            level.name()
        );
        let mut around = buf[..start].iter().chain(&buf[start + n..]);
        assert!(
            around.all(|v| v.to_bits() == 0x7fc0_1234),
            "{ty}: level {} wrote outside its output",
            level.name()
        );
    }

    if rest.len() % bb != 0 {
        assert!(cpu::dequantize_to_vec::<f32>(ty, rest).is_err());
    }
    let mut wrong = vec![0f32; n + 1];
    assert!(cpu::dequantize(ty, src, &mut wrong).is_err());

    let undecodable = [GgmlType::Q8_1, GgmlType::Q8_K, GgmlType::I32, GgmlType::F64];
    let u = undecodable[sel as usize % undecodable.len()];
    let whole = &rest[..rest.len() / u.block_bytes() * u.block_bytes()];
    assert!(matches!(
        cpu::dequantize_to_vec::<f32>(u, whole),
        Err(Error::Unsupported { .. })
    ));
});
