#![cfg(feature = "cuda")]
//! The CUDA kernels, compiled for the host and run over an emulated grid, against
//! the CPU reference on fresh random blocks of every type, for every output type:
//! one block, sizes that leave the last thread block partly idle, and grids too
//! small for the tensor (so every thread walks the grid-stride loop several times).
//! Outputs are poisoned with NaN first, so an element no thread writes fails.

mod common;

use common::*;
use gguf_dequant::cpu::{self, OutElem};
use gguf_dequant::synth::{random_blocks, Rng};
use gguf_dequant::{emulated, GgmlType};
use half::{bf16, f16};

fn check<O: OutElem + Bits>(ty: GgmlType, src: &[u8], what: &str) {
    check_with::<O>(ty, src, what, assert_bits_eq::<O>)
}

fn check_with<O: OutElem + Bits>(
    ty: GgmlType,
    src: &[u8],
    what: &str,
    assert: fn(&str, &[O], &[O]),
) {
    let n = src.len() / ty.block_bytes() * ty.block_elems();
    let mut want = vec![O::default(); n];
    cpu::dequantize_reference(ty, src, &mut want).unwrap();
    for max_grid in [1, 2, 5, u32::MAX] {
        let mut got = vec![O::from_f32(f32::NAN); n];
        emulated::dequantize_with_grid(ty, src, &mut got, max_grid).unwrap();
        assert(
            &format!("{ty} {what} -> {:?}, grid <= {max_grid}", O::OUT),
            &got,
            &want,
        );
    }
}

#[test]
fn every_type_and_output_on_fresh_random_blocks() {
    for (ty, n_blocks, src) in kernel_cases(&mut Rng(fresh_seed())) {
        let what = format!("{n_blocks} blocks");
        check::<f32>(ty, &src, &what);
        check::<f16>(ty, &src, &what);
        check::<bf16>(ty, &src, &what);
    }
}

/// Arbitrary bytes, scales included (NaN, Inf, subnormal): the kernels compute
/// what the CPU reference computes, bit for bit but for NaN signs and payloads.
#[test]
fn every_type_on_arbitrary_bytes() {
    let mut rng = Rng(fresh_seed());
    for ty in GgmlType::dequantizable() {
        let mut src = vec![0u8; ty.block_bytes() * 37];
        rng.fill(&mut src);
        check_with::<f32>(ty, &src, "arbitrary bytes", assert_same_values::<f32>);
        check_with::<bf16>(ty, &src, "arbitrary bytes", assert_same_values::<bf16>);
    }
}

#[test]
fn unaligned_input_is_decoded_the_same() {
    let mut rng = Rng(fresh_seed());
    for ty in GgmlType::dequantizable() {
        let src = random_blocks(ty, 9, &mut rng);
        let mut shifted = vec![0u8; src.len() + 1];
        shifted[1..].copy_from_slice(&src);
        let n = 9 * ty.block_elems();
        let (mut a, mut b) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        emulated::dequantize(ty, &src, &mut a).unwrap();
        emulated::dequantize(ty, &shifted[1..], &mut b).unwrap();
        assert_bits_eq(&format!("{ty} at an odd address"), &b, &a);
    }
}

#[test]
fn lengths_and_types_are_checked() {
    let mut out = vec![0f32; 32];
    assert!(emulated::dequantize(GgmlType::Q4_0, &[0u8; 17], &mut out).is_err());
    assert!(emulated::dequantize(GgmlType::Q4_0, &[0u8; 36], &mut out).is_err());
    let err = emulated::dequantize(GgmlType::Q8_K, &[0u8; 292], &mut vec![0f32; 256]).unwrap_err();
    assert!(err.to_string().contains("q8_K"), "{err}");
}

/// f32/f16/bf16 decode 8 elements a thread with 16-byte accesses; an output
/// that is not 16-byte aligned goes to the one-element kernels instead, and
/// the result is the same.
#[test]
fn plain_types_into_unaligned_outputs() {
    let mut rng = Rng(fresh_seed());
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        let n = 1003;
        let src = random_blocks(ty, n, &mut rng);
        let mut want = vec![0f32; n];
        cpu::dequantize_reference(ty, &src, &mut want).unwrap();
        let mut buf = vec![f32::NAN; n + 1];
        emulated::dequantize(ty, &src, &mut buf[1..]).unwrap();
        assert_bits_eq(&format!("{ty} into an odd output"), &buf[1..], &want);
        let mut buf16 = vec![f16::NAN; n + 3];
        emulated::dequantize_with_grid(ty, &src, &mut buf16[3..], 2).unwrap();
        assert_bits_eq(
            &format!("{ty} into an odd f16 output"),
            &buf16[3..],
            &to_f16(&want),
        );
    }
}

/// The kernels copy f16 into f16 and bf16 into bf16 bit for bit, every
/// pattern, through the wide and the one-element kernels.
#[test]
fn same_type_output_is_a_bit_exact_copy() {
    let halves: Vec<u8> = (0..=u16::MAX).flat_map(|b| b.to_le_bytes()).collect();
    let want: Vec<u16> = (0..=u16::MAX).collect();
    for (start, len) in [(0, want.len()), (1, want.len() - 9)] {
        let src = &halves[2 * start..2 * (start + len)];
        let mut h = vec![f16::ZERO; len];
        emulated::dequantize(GgmlType::F16, src, &mut h).unwrap();
        assert!(h
            .iter()
            .map(|v| v.to_bits())
            .eq(want[start..start + len].iter().copied()));
        let mut b = vec![bf16::ZERO; len];
        emulated::dequantize_with_grid(GgmlType::BF16, src, &mut b, 3).unwrap();
        assert!(b
            .iter()
            .map(|v| v.to_bits())
            .eq(want[start..start + len].iter().copied()));
    }
}
