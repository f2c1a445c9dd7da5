//! Writes the seed inputs of the fuzz targets (see docs/FUZZING.md) into
//! `fuzz/corpus/<target>/seed-*`, from the real-weights fixture and
//! `GgufWriter`:
//!
//!     cargo run --example fuzz_seeds
//!
//! For each type, 256 elements of ggml's own quantized data (a whole number of
//! blocks of every type) as a small GGUF file (reader targets) and as raw blocks
//! behind the type id byte (`cpu_decoders`); one file with every type and every
//! metadata value type. The malformed corpus in `tests/corpus/malformed/` is
//! passed to the reader targets as a second, read-only seed directory.

use std::path::Path;

use gguf_dequant::gguf::{GgufFile, GgufWriter, Value, ValueType};
use gguf_dequant::types::TYPES;
use gguf_dequant::Result;

const ELEMS: u64 = 256;

fn main() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let real = GgufFile::open(root.join("tests/fixtures/real-weights.gguf"))?;
    let corpus = root.join("fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    };

    let mut all = GgufWriter::new();
    add_every_value(&mut all)?;
    for t in real.tensors() {
        let n = t.ty.bytes_for(ELEMS).unwrap() as usize;
        let blocks = &real.tensor_data(t)?[..n];
        let mut w = GgufWriter::new();
        w.add_kv("general.architecture", Value::String("minilm".into()))?;
        w.add_tensor(t.name.clone(), t.ty, &[ELEMS], blocks)?;
        let file = w.to_bytes();
        write("gguf_reader", t.ty.name(), &file);
        write("reader_convert", t.ty.name(), &file);
        let mut raw = vec![t.ty.id() as u8];
        raw.extend_from_slice(blocks);
        write("cpu_decoders", t.ty.name(), &raw);
        all.add_tensor(t.name.clone(), t.ty, &[ELEMS], blocks)?;
    }
    // The types ggml cannot dequantize: the reader accepts them, decoding refuses.
    for info in TYPES.iter().filter(|i| !i.dequantizable) {
        let n = info.ty.bytes_for(ELEMS).unwrap() as usize;
        let data: Vec<u8> = (0..n).map(|i| i as u8).collect();
        all.add_tensor(
            format!("undecodable.{}", info.name),
            info.ty,
            &[ELEMS],
            data,
        )?;
    }
    let all = all.to_bytes();
    write("gguf_reader", "all", &all);
    write("reader_convert", "all", &all);
    Ok(())
}

fn add_every_value(w: &mut GgufWriter) -> Result<()> {
    w.add_kv("general.alignment", Value::U32(64))?;
    let scalars = [
        Value::U8(1),
        Value::I8(-1),
        Value::U16(2),
        Value::I16(-2),
        Value::U32(3),
        Value::I32(-3),
        Value::F32(0.5),
        Value::Bool(true),
        Value::String("s".into()),
        Value::U64(4),
        Value::I64(-4),
        Value::F64(0.25),
    ];
    for v in scalars {
        w.add_kv(format!("k.{}", v.type_name()), v.clone())?;
        w.add_kv(
            format!("a.{}", v.type_name()),
            Value::Array(v.value_type(), vec![v.clone(), v]),
        )?;
    }
    w.add_kv(
        "a.nested",
        Value::Array(
            ValueType::Array,
            vec![Value::Array(
                ValueType::String,
                vec![Value::String("x".into())],
            )],
        ),
    )?;
    Ok(())
}
