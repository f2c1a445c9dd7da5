#![cfg(feature = "candle")]
//! GGUF tensors as candle tensors on candle's CPU device: every type in each
//! output dtype, row-major shapes, the values of the CPU decode to the bit;
//! shards as `[rows, cols]`; what cannot be decoded refused.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use gguf_dequant::gguf::{GgufFile, GgufWriter};
use gguf_dequant::shard::Shard;
use gguf_dequant::synth::{random_blocks, Rng};
use gguf_dequant::{cpu, GgmlType, OutElem};
use half::{bf16, f16};

/// One tensor of every type, 3-D: rows of 2 blocks, 3 x 2 rows; and a q8_1
/// tensor, a type ggml does not dequantize.
fn file() -> GgufFile {
    let mut w = GgufWriter::new();
    let mut rng = Rng(41);
    for ty in GgmlType::dequantizable() {
        let ne = [2 * ty.block_elems() as u64, 3, 2];
        w.add_tensor(ty.name(), ty, &ne, random_blocks(ty, 12, &mut rng))
            .unwrap();
    }
    let mut q8_1 = vec![0; 2 * GgmlType::Q8_1.block_bytes()];
    rng.fill(&mut q8_1);
    w.add_tensor("q8_1", GgmlType::Q8_1, &[64], q8_1).unwrap();
    GgufFile::from_bytes(w.to_bytes()).unwrap()
}

fn values<O: OutElem + candle_core::WithDType>(t: &Tensor) -> Vec<O> {
    t.flatten_all().unwrap().to_vec1::<O>().unwrap()
}

fn check<O: OutElem + Bits + candle_core::WithDType>(dtype: DType) {
    let f = file();
    let chosen = |t: &gguf_dequant::gguf::TensorInfo| t.ty.is_dequantizable();
    let loaded = gguf_dequant::candle::load(&f, dtype, &Device::Cpu, chosen).unwrap();
    assert_eq!(loaded.len(), GgmlType::dequantizable().count());
    for t in f.tensors().iter().filter(|t| chosen(t)) {
        let got = &loaded[&t.name];
        let shape: Vec<usize> = t.shape_row_major().iter().map(|&d| d as usize).collect();
        assert_eq!((got.dims(), got.dtype()), (&shape[..], dtype), "{}", t.name);
        let want: Vec<O> = cpu::dequantize_to_vec(t.ty, f.tensor_data(t).unwrap()).unwrap();
        assert_bits_eq(
            &format!("{} as {dtype:?}", t.name),
            &values::<O>(got),
            &want,
        );
    }
}

#[test]
fn every_type_as_f32_f16_and_bf16() {
    check::<f32>(DType::F32);
    check::<f16>(DType::F16);
    check::<bf16>(DType::BF16);
}

#[test]
fn a_shard_is_its_rows_and_columns() {
    let f = file();
    let t = f.tensor("q4_K").unwrap();
    let whole = gguf_dequant::candle::tensor(&f, t, DType::F32, &Device::Cpu).unwrap();
    // rows 1..5 of the 6 (flattened 2 x 3), the second block of each
    let s = Shard {
        rows: 1..5,
        cols: 256..512,
    };
    let part = gguf_dequant::candle::shard(&f, t, &s, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(part.dims(), &[4, 256]);
    let want = whole.reshape((6, 512)).unwrap().narrow(0, 1, 4).unwrap();
    let want = want.narrow(1, 256, 256).unwrap();
    assert_bits_eq("q4_K shard", &values::<f32>(&part), &values::<f32>(&want));
}

#[test]
fn what_cannot_be_decoded_is_refused() {
    let f = file();
    let t = f.tensor("q4_K").unwrap();
    let e = gguf_dequant::candle::tensor(&f, t, DType::U8, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("f32, f16 or bf16"), "{e}");
    let q8_1 = f.tensor("q8_1").unwrap();
    let e = gguf_dequant::candle::tensor(&f, q8_1, DType::F32, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("q8_1"), "{e}");
    let unaligned = Shard {
        rows: 0..1,
        cols: 0..100,
    };
    let e = gguf_dequant::candle::shard(&f, t, &unaligned, DType::F32, &Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("block boundaries"), "{e}");
}

/// A zero in a tensor's shape: an empty candle tensor of that shape.
#[test]
fn empty_tensors_are_empty() {
    let mut w = GgufWriter::new();
    w.add_tensor("rows", GgmlType::Q8_0, &[32, 0], Vec::new())
        .unwrap();
    w.add_tensor("cols", GgmlType::Q8_0, &[0, 5, 1 << 40], Vec::new())
        .unwrap();
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    let got = gguf_dequant::candle::load(&f, DType::BF16, &Device::Cpu, |_| true).unwrap();
    assert_eq!(got["rows"].dims(), &[0, 32]);
    assert_eq!(got["cols"].dims(), &[1 << 40, 5, 0]);
    assert_eq!(got["cols"].elem_count(), 0);
}
