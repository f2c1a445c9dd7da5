use super::*;
use crate::types::TYPES;

fn every_value() -> Vec<(String, Value)> {
    let strings = |v: &[&str]| {
        Value::Array(
            ValueType::String,
            v.iter().map(|s| Value::String(s.to_string())).collect(),
        )
    };
    vec![
        ("u8".into(), Value::U8(200)),
        ("i8".into(), Value::I8(-100)),
        ("u16".into(), Value::U16(60000)),
        ("i16".into(), Value::I16(-30000)),
        ("u32".into(), Value::U32(4_000_000_000)),
        ("i32".into(), Value::I32(-2_000_000_000)),
        ("f32".into(), Value::F32(-1.5e-3)),
        ("bool.t".into(), Value::Bool(true)),
        ("bool.f".into(), Value::Bool(false)),
        ("string".into(), Value::String("héllo, wörld".into())),
        ("string.empty".into(), Value::String(String::new())),
        ("u64".into(), Value::U64(u64::MAX)),
        ("i64".into(), Value::I64(i64::MIN)),
        ("f64".into(), Value::F64(std::f64::consts::PI)),
        (
            "array.u32".into(),
            Value::Array(ValueType::U32, (0..20).map(Value::U32).collect()),
        ),
        ("array.string".into(), strings(&["a", "", "ü", "<0xFF>"])),
        ("array.empty".into(), Value::Array(ValueType::F64, vec![])),
        (
            "array.nested".into(),
            Value::Array(
                ValueType::Array,
                vec![
                    strings(&["x"]),
                    Value::Array(ValueType::I8, vec![Value::I8(-1)]),
                ],
            ),
        ),
        (
            "array.every".into(),
            Value::Array(
                ValueType::Array,
                vec![
                    Value::Array(ValueType::U8, vec![Value::U8(1)]),
                    Value::Array(ValueType::I16, vec![Value::I16(-2)]),
                    Value::Array(ValueType::U16, vec![Value::U16(3)]),
                    Value::Array(ValueType::I32, vec![Value::I32(-4)]),
                    Value::Array(ValueType::F32, vec![Value::F32(0.5)]),
                    Value::Array(ValueType::Bool, vec![Value::Bool(true)]),
                    Value::Array(ValueType::U64, vec![Value::U64(7)]),
                    Value::Array(ValueType::I64, vec![Value::I64(-8)]),
                    Value::Array(ValueType::F64, vec![Value::F64(-0.25)]),
                ],
            ),
        ),
    ]
}

#[test]
fn every_value_type_round_trips() {
    let mut w = GgufWriter::new();
    let kvs = every_value();
    for (k, v) in &kvs {
        w.add_kv(k.clone(), v.clone()).unwrap();
    }
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(f.metadata(), &kvs[..]);
    assert_eq!(f.get("u64"), Some(&Value::U64(u64::MAX)));
    assert_eq!(f.get("missing"), None);
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), DEFAULT_ALIGNMENT);
    assert!(f.tensors().is_empty());
}

/// A deterministic fill, so that each tensor's bytes differ.
fn data_for(ty: GgmlType, ne: &[u64], seed: u8) -> Vec<u8> {
    let n = ty.bytes_for(ne.iter().product()).unwrap() as usize;
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

#[test]
fn every_ggml_type_round_trips() {
    let mut w = GgufWriter::new();
    w.add_kv("general.alignment", Value::U32(64)).unwrap();
    let mut want = Vec::new();
    for (i, t) in TYPES.iter().enumerate() {
        let ne = vec![t.block_elems as u64 * 2, 3];
        let data = data_for(t.ty, &ne, i as u8);
        w.add_tensor(format!("t.{}", t.name), t.ty, &ne, &data)
            .unwrap();
        want.push((t.ty, ne, data));
    }
    let bytes = w.to_bytes();
    let f = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset() % 64, 0);
    assert_eq!(f.tensors().len(), TYPES.len());
    for (t, (ty, ne, data)) in f.tensors().iter().zip(&want) {
        assert_eq!(t.ty, *ty);
        assert_eq!(&t.ne, ne);
        assert_eq!(t.n_elems, ne.iter().product::<u64>());
        assert_eq!(t.nbytes, data.len() as u64);
        assert_eq!(t.offset % 64, 0);
        assert_eq!(f.tensor_data(t).unwrap(), &data[..]);
        assert_eq!(f.tensor(&t.name), Some(t));
        assert_eq!(t.shape_row_major(), vec![ne[1], ne[0]]);
    }
}

#[test]
fn version_2_is_read() {
    let mut w = GgufWriter::new();
    w.set_version(2).unwrap();
    w.add_kv("general.name", Value::String("v2".into()))
        .unwrap();
    w.add_tensor("x", GgmlType::F32, &[4], [0u8; 16]).unwrap();
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(f.version(), 2);
    assert_eq!(f.get("general.name").and_then(Value::as_str), Some("v2"));
    assert_eq!(f.tensor_data(&f.tensors()[0]).unwrap(), &[0u8; 16]);
    assert!(GgufWriter::new().set_version(1).is_err());
}

#[test]
fn writer_refuses_what_the_reader_would() {
    let mut w = GgufWriter::new();
    w.add_kv("k", Value::U8(1)).unwrap();
    assert!(w.add_kv("k", Value::U8(2)).is_err(), "duplicate key");
    for bad in [
        Value::U32(0),
        Value::U32(3),
        Value::U32(1 << 21),
        Value::U64(32),
    ] {
        assert!(w.add_kv("general.alignment", bad).is_err());
    }
    let mixed = Value::Array(ValueType::U8, vec![Value::U8(1), Value::I8(1)]);
    assert!(w.add_kv("mixed", mixed).is_err());
    let mut deep = Value::Array(ValueType::U8, vec![]);
    for _ in 0..MAX_ARRAY_DEPTH {
        deep = Value::Array(ValueType::Array, vec![deep]);
    }
    assert!(w.add_kv("deep", deep).is_err());

    w.add_tensor("t", GgmlType::Q4_0, &[32], [0u8; 18]).unwrap();
    assert!(w.add_tensor("t", GgmlType::Q4_0, &[32], [0u8; 18]).is_err());
    assert!(w
        .add_tensor("short", GgmlType::Q4_0, &[32], [0u8; 17])
        .is_err());
    assert!(w
        .add_tensor("row", GgmlType::Q4_0, &[16, 2], [0u8; 18])
        .is_err());
    assert!(w.add_tensor("dims", GgmlType::F32, &[], [0u8; 4]).is_err());
    assert!(w
        .add_tensor("dims5", GgmlType::F32, &[1; 5], [0u8; 4])
        .is_err());
    assert!(w
        .add_tensor("huge", GgmlType::F32, &[u64::MAX, 2], [0u8; 4])
        .is_err());
}

#[test]
fn deepest_allowed_nesting_reads() {
    let mut v = Value::Array(ValueType::U8, vec![Value::U8(9)]);
    for _ in 1..MAX_ARRAY_DEPTH {
        v = Value::Array(ValueType::Array, vec![v]);
    }
    let mut w = GgufWriter::new();
    w.add_kv("deep", v.clone()).unwrap();
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(f.get("deep"), Some(&v));
}

#[test]
fn empty_tensor_is_accepted() {
    let mut w = GgufWriter::new();
    w.add_tensor("empty", GgmlType::Q4_K, &[0, 5], Vec::new())
        .unwrap();
    w.add_tensor("after", GgmlType::F16, &[2], [1u8, 2, 3, 4])
        .unwrap();
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(f.tensors()[0].nbytes, 0);
    assert_eq!(f.tensor_data(&f.tensors()[0]).unwrap(), &[] as &[u8]);
    assert_eq!(f.tensor_data(&f.tensors()[1]).unwrap(), &[1, 2, 3, 4]);
}

#[test]
fn foreign_tensor_info_is_bounds_checked() {
    let mut w = GgufWriter::new();
    w.add_tensor("x", GgmlType::F32, &[1], [0u8; 4]).unwrap();
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    let mut t = f.tensors()[0].clone();
    t.offset = u64::MAX - 1;
    assert!(f.tensor_data(&t).is_err());
    t.offset = f.file_len();
    assert!(f.tensor_data(&t).is_err());
}

/// A file under the system temp directory, removed on drop.
struct TempFile(std::path::PathBuf);
impl TempFile {
    fn new(tag: &str, bytes: &[u8]) -> Self {
        let p = std::env::temp_dir().join(format!(
            "gguf-dequant-{tag}-{}-{:?}.gguf",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&p, bytes).unwrap();
        TempFile(p)
    }
}
impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn two_tensor_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_tensor("a", GgmlType::F32, &[8], [7u8; 32]).unwrap();
    w.add_tensor("b", GgmlType::F32, &[8], [9u8; 32]).unwrap();
    w.to_bytes()
}

#[test]
fn mapped_and_read_files_agree() {
    let tmp = TempFile::new("agree", &two_tensor_file());
    let mapped = GgufFile::open(&tmp.0).unwrap();
    let read = GgufFile::open_with(&tmp.0, OpenOptions { mmap: false }).unwrap();
    assert!(mapped.is_mapped() && !read.is_mapped());
    assert_eq!(mapped.tensors(), read.tensors());
    for t in mapped.tensors() {
        assert_eq!(mapped.tensor_data(t).unwrap(), read.tensor_data(t).unwrap());
    }
}

#[test]
fn mapped_file_truncated_after_open_is_an_error_not_sigbus() {
    let bytes = two_tensor_file();
    let tmp = TempFile::new("shrink", &bytes);
    let f = GgufFile::open(&tmp.0).unwrap();
    let read = GgufFile::open_with(&tmp.0, OpenOptions { mmap: false }).unwrap();
    let b = f.tensor("b").unwrap().clone();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&tmp.0)
        .unwrap()
        .set_len(b.offset + 4)
        .unwrap();
    let err = f.tensor_data(&b).unwrap_err().to_string();
    assert!(err.contains("tensor 'b': the file shrank"), "{err}");
    // The first tensor is still wholly there.
    assert_eq!(f.tensor_data(f.tensor("a").unwrap()).unwrap(), &[7u8; 32]);
    // A file read into memory is unaffected.
    assert_eq!(read.tensor_data(&b).unwrap(), &[9u8; 32]);
}

#[test]
fn open_errors_name_the_path() {
    let err = GgufFile::open("/nonexistent/x.gguf")
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/x.gguf"), "{err}");
    let err = GgufFile::open(std::env::temp_dir())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a regular file"), "{err}");
    let empty = TempFile::new("empty", &[]);
    let err = GgufFile::open(&empty.0).unwrap_err().to_string();
    assert!(err.contains("too short"), "{err}");
}

#[test]
fn metadata_memory_is_what_the_module_doc_says() {
    assert!(std::mem::size_of::<Value>() <= 40);
    assert!(std::mem::size_of::<Array>() <= 32);
    let n = 4096;
    // (the array, at most this many times its bytes in the file)
    let cases: Vec<(Value, usize)> = vec![
        (Array::U8(vec![7; n]).into(), 1),
        (Array::I8(vec![-7; n]).into(), 1),
        (Array::Bool(vec![true; n]).into(), 1),
        (Array::U16(vec![7; n]).into(), 1),
        (Array::F32(vec![0.5; n]).into(), 1),
        (Array::U64(vec![7; n]).into(), 1),
        (Array::F64(vec![0.5; n]).into(), 1),
        (Array::String(vec![String::new(); n]).into(), 3),
        (Array::String(vec!["x".into(); n]).into(), 3),
        (Array::Array(vec![Array::U8(vec![]); n]).into(), 3),
        (
            Array::Array(vec![Array::Array(vec![Array::F64(vec![])]); n]).into(),
            3,
        ),
    ];
    for (v, times) in cases {
        let mut w = GgufWriter::new();
        // alignment 1: no padding after the header
        w.add_kv("general.alignment", Value::U32(1)).unwrap();
        w.add_kv("k", v.clone()).unwrap();
        let mut bytes = w.to_bytes();
        if v == Value::Packed(Array::String(vec!["x".into(); n])) {
            // invalid UTF-8: each byte becomes a 3-byte U+FFFD
            bytes
                .iter_mut()
                .filter(|b| **b == b'x')
                .for_each(|b| *b = 0xff);
        }
        // the array's bytes in the file: all but the header, the alignment and the key
        let in_file = bytes.len() - 24 - (8 + 17 + 4 + 4) - (8 + 1 + 4);
        let f = GgufFile::from_bytes(bytes).unwrap();
        let held = f.get("k").unwrap().heap_bytes();
        assert!(held <= times * in_file, "{v}: {held} bytes for {in_file}");
    }
}

#[test]
fn packed_and_element_arrays_agree() {
    let packed = Value::Packed(Array::U32(vec![1, 2, 3]));
    let loose = Value::Array(
        ValueType::U32,
        vec![Value::U32(1), Value::U32(2), Value::U32(3)],
    );
    assert_eq!(packed, loose);
    assert_eq!(loose, packed);
    assert_ne!(packed, Value::Array(ValueType::U32, vec![Value::U32(1)]));
    assert_ne!(packed, Value::Array(ValueType::I32, vec![]));
    assert_eq!(packed.to_string(), loose.to_string());
    assert_eq!(packed.to_json(), loose.to_json());
    let mut a = GgufWriter::new();
    a.add_kv("k", packed.clone()).unwrap();
    let mut b = GgufWriter::new();
    b.add_kv("k", loose).unwrap();
    assert_eq!(a.to_bytes(), b.to_bytes());
    let f = GgufFile::from_bytes(a.to_bytes()).unwrap();
    let got = f.get("k").unwrap().as_array().unwrap();
    assert_eq!((got.len(), got.item_type()), (3, ValueType::U32));
    assert_eq!(got.get(2), Some(Value::U32(3)));
    assert_eq!(got.get(3), None);
    assert_eq!(got.iter().collect::<Vec<_>>().len(), 3);
    // An element of the wrong type is refused, nested ones too.
    let nested = Value::Array(
        ValueType::Array,
        vec![Value::Array(ValueType::U8, vec![Value::I8(1)])],
    );
    let mut w = GgufWriter::new();
    let err = w.add_kv("k", nested).err().unwrap().to_string();
    assert!(err.contains("array of u8 holds a i8 at index 0"), "{err}");
}

#[test]
fn bad_bool_in_an_array_names_its_byte() {
    let mut w = GgufWriter::new();
    w.add_kv("k", Array::Bool(vec![false, true, false]).into())
        .unwrap();
    let mut bytes = w.to_bytes();
    // header 24, key 8 + 1, type 4, element type 4, length 8: elements at 49
    assert_eq!(&bytes[49..52], &[0, 1, 0]);
    bytes[51] = 2;
    let err = GgufFile::from_bytes(bytes).unwrap_err().to_string();
    assert!(
        err.contains("byte 51") && err.contains("bool value 2"),
        "{err}"
    );
}

#[test]
fn deferred_tensors_are_filled_while_writing() {
    let mut w = GgufWriter::new();
    w.add_tensor("a", GgmlType::F32, &[2], vec![1u8; 8])
        .unwrap();
    w.add_tensor_deferred("b", GgmlType::Q4_0, &[64]).unwrap();
    let mut out = Vec::new();
    let mut asked = Vec::new();
    w.write_to_with(&mut out, &mut |i, buf| {
        asked.push((i, buf.len()));
        buf.fill(7);
        Ok(())
    })
    .unwrap();
    assert_eq!(asked, vec![(1, 36)]);
    let f = GgufFile::from_bytes(out).unwrap();
    assert_eq!(f.tensor_data(f.tensor("b").unwrap()).unwrap(), &[7u8; 36]);
    assert_eq!(f.tensor_data(f.tensor("a").unwrap()).unwrap(), &[1u8; 8]);
    // Without a source of bytes, writing is an error, not a panic.
    assert!(w.write_to(Vec::new()).is_err());
    // Deferred tensors are checked like the others.
    assert!(w.add_tensor_deferred("b", GgmlType::Q4_0, &[64]).is_err());
    assert!(w.add_tensor_deferred("c", GgmlType::Q4_0, &[33]).is_err());
}
