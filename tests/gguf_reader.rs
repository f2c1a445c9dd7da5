//! The GGUF reader on real files (ggml's fixture, read by mapping and by
//! reading), writer → reader round trips through the public API, v2 files and
//! truncations of a real file.

mod common;

use common::fixture;
use gguf_dequant::gguf::{GgufFile, GgufWriter, OpenOptions, Value, ValueType};
use gguf_dequant::types::TYPES;
use gguf_dequant::{Error, GgmlType};

fn manifest() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture("manifest.json")).unwrap()).unwrap()
}

fn check_against_manifest(f: &GgufFile, offset_key: &str, expected_file: bool) {
    let m = manifest();
    let tensors = m["tensors"].as_array().unwrap();
    assert_eq!(f.tensors().len(), 28);
    assert_eq!(tensors.len(), 28);
    for (t, want) in f.tensors().iter().zip(tensors) {
        assert_eq!(t.name, want["name"].as_str().unwrap());
        let ne: Vec<u64> = want["ne_ggml"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(t.ne, ne, "{}", t.name);
        assert_eq!(t.shape_row_major(), vec![64, 1536]);
        assert_eq!(t.n_elems, want["n_elements"].as_u64().unwrap());
        assert_eq!(t.offset, want[offset_key].as_u64().unwrap(), "{}", t.name);
        if expected_file {
            assert_eq!(t.ty, GgmlType::F32);
            assert_eq!(t.nbytes, 4 * t.n_elems);
        } else {
            assert_eq!(t.ty.id(), want["type_id"].as_u64().unwrap() as u32);
            assert_eq!(
                t.nbytes,
                want["quant_bytes"].as_u64().unwrap(),
                "{}",
                t.name
            );
        }
        assert_eq!(f.tensor_data(t).unwrap().len() as u64, t.nbytes);
        assert_eq!(f.tensor(&t.name), Some(t));
    }
}

#[test]
fn real_weights_offsets_and_sizes_match_the_manifest() {
    for mmap in [true, false] {
        let f = GgufFile::open_with(fixture("real-weights.gguf"), OpenOptions { mmap }).unwrap();
        assert_eq!(f.is_mapped(), mmap);
        assert_eq!(f.version(), 3);
        assert_eq!(f.alignment(), 32);
        assert_eq!(f.file_len(), 1937312);
        assert_eq!(f.data_offset(), 1952);
        check_against_manifest(&f, "data_offset_in_file", false);
    }
}

#[test]
fn real_weights_data_is_the_manifests_bytes() {
    let f = GgufFile::open(fixture("real-weights.gguf")).unwrap();
    let raw = std::fs::read(fixture("real-weights.gguf")).unwrap();
    for t in common::real_tensors() {
        let info = f.tensor(&t.name).unwrap();
        assert_eq!(f.tensor_data(info).unwrap(), &t.quant[..], "{}", t.name);
        let at = info.offset as usize;
        assert_eq!(&raw[at..at + t.quant.len()], &t.quant[..]);
    }
}

#[test]
fn expected_file_offsets_match_the_manifest() {
    let f = GgufFile::open(fixture("real-weights.expected.gguf")).unwrap();
    check_against_manifest(&f, "data_offset_in_expected_file", true);
}

#[test]
fn real_weights_round_trip_through_the_writer() {
    let f = GgufFile::open(fixture("real-weights.gguf")).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in f.metadata() {
        w.add_kv(k.clone(), v.clone()).unwrap();
    }
    for t in f.tensors() {
        w.add_tensor(t.name.clone(), t.ty, &t.ne, f.tensor_data(t).unwrap())
            .unwrap();
    }
    let bytes = w.to_bytes();
    // gguf-py and this writer lay files out the same way.
    assert_eq!(bytes, f.as_bytes());
    let g = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(g.metadata(), f.metadata());
    assert_eq!(g.tensors(), f.tensors());
}

#[test]
fn version_2_real_file_reads_the_same() {
    let mut bytes = std::fs::read(fixture("real-weights.gguf")).unwrap();
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    let v2 = GgufFile::from_bytes(bytes).unwrap();
    let v3 = GgufFile::open(fixture("real-weights.gguf")).unwrap();
    assert_eq!(v2.version(), 2);
    assert_eq!(v2.tensors(), v3.tensors());
    assert_eq!(v2.metadata(), v3.metadata());
}

#[test]
fn version_2_written_file_reads() {
    let mut w = GgufWriter::new();
    w.set_version(2).unwrap();
    w.add_kv("general.architecture", Value::String("llama".into()))
        .unwrap();
    w.add_tensor("w", GgmlType::Q8_0, &[32, 2], vec![1u8; 68])
        .unwrap();
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(f.version(), 2);
    assert_eq!(f.tensor_data(f.tensor("w").unwrap()).unwrap(), &[1u8; 68]);
}

#[test]
fn every_value_type_round_trips() {
    let scalars = [
        Value::U8(u8::MAX),
        Value::I8(i8::MIN),
        Value::U16(u16::MAX),
        Value::I16(i16::MIN),
        Value::U32(u32::MAX),
        Value::I32(i32::MIN),
        Value::F32(f32::MIN_POSITIVE),
        Value::Bool(true),
        Value::String("tokenizer ▁ü".into()),
        Value::U64(u64::MAX),
        Value::I64(i64::MIN),
        Value::F64(-0.0),
    ];
    let mut w = GgufWriter::new();
    let mut want = Vec::new();
    for v in &scalars {
        let k = format!("scalar.{}", v.type_name());
        w.add_kv(k.clone(), v.clone()).unwrap();
        want.push((k, v.clone()));
        let k = format!("array.{}", v.type_name());
        let a = Value::Array(v.value_type(), vec![v.clone(); 3]);
        w.add_kv(k.clone(), a.clone()).unwrap();
        want.push((k, a));
    }
    let nested = Value::Array(
        ValueType::Array,
        vec![
            Value::Array(ValueType::String, vec![Value::String("a".into())]),
            Value::Array(ValueType::U32, vec![]),
        ],
    );
    w.add_kv("array.nested", nested.clone()).unwrap();
    want.push(("array.nested".into(), nested));
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(f.metadata(), &want[..]);
    for t in ValueType::ALL {
        assert!(
            f.metadata()
                .iter()
                .any(|(_, v)| v.value_type() == t || matches!(v, Value::Array(e, _) if *e == t)),
            "{t} not covered"
        );
    }
}

#[test]
fn every_ggml_type_round_trips_and_undecodable_ones_are_accepted() {
    let mut w = GgufWriter::new();
    for t in TYPES {
        let ne = [t.block_elems as u64, 2];
        let data: Vec<u8> = (0..2 * t.block_bytes).map(|i| i as u8).collect();
        w.add_tensor(t.name, t.ty, &ne, data).unwrap();
    }
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(f.tensors().len(), TYPES.len());
    for (t, info) in TYPES.iter().zip(f.tensors()) {
        assert_eq!(info.ty, t.ty);
        assert_eq!(info.nbytes, 2 * t.block_bytes as u64);
        let data = f.tensor_data(info).unwrap();
        assert!(data.iter().enumerate().all(|(i, &b)| b == i as u8));
    }
    for ty in [
        GgmlType::Q8_1,
        GgmlType::Q8_K,
        GgmlType::I8,
        GgmlType::I16,
        GgmlType::I32,
        GgmlType::I64,
        GgmlType::F64,
    ] {
        let t = f.tensor(ty.name()).unwrap();
        assert_eq!(t.ty, ty);
        assert!(!ty.is_dequantizable());
    }
}

#[test]
fn real_file_truncated_anywhere_is_an_error() {
    let bytes = std::fs::read(fixture("real-weights.gguf")).unwrap();
    let f = GgufFile::from_bytes(bytes.clone()).unwrap();
    let header_end = f.data_offset() as usize;
    let mut cuts: Vec<usize> = (0..=header_end + 64).collect();
    // And inside the data: in each tensor, and one byte short of the end.
    cuts.extend(
        f.tensors()
            .iter()
            .map(|t| (t.offset + t.nbytes / 2) as usize),
    );
    cuts.push(bytes.len() - 1);
    for cut in cuts {
        match GgufFile::from_bytes(bytes[..cut].to_vec()) {
            Err(Error::Gguf { offset, message }) => {
                assert!(
                    offset <= cut as u64,
                    "cut {cut}: offset {offset}: {message}"
                );
                assert!(
                    ["too short", "file ends", "past the end", "cannot fit"]
                        .iter()
                        .any(|s| message.contains(s)),
                    "cut {cut}: {message}"
                );
            }
            Err(e) => panic!("cut {cut}: unexpected error {e}"),
            Ok(_) => panic!("cut {cut}: a truncated file was accepted"),
        }
    }
}
