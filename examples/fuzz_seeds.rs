//! Writes the seed inputs of the fuzz targets (see docs/FUZZING.md) into
//! `fuzz/corpus/<target>/seed-*`, from the real-weights fixture and
//! `GgufWriter`:
//!
//!     cargo run --example fuzz_seeds
//!
//! For each type, 256 elements of ggml's own quantized data (a whole number of
//! blocks of every type) as a small GGUF file (reader targets), as raw blocks
//! behind the type id byte (`cpu_decoders`) and as the data of tensors of a
//! few shapes with a shard of each kind (`shards`); one file with every type
//! and every metadata value type. The malformed corpus in `tests/corpus/malformed/` is
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
        for (what, input) in shard_seeds(t.ty.id() as u8, blocks) {
            write("shards", &format!("{}-{what}", t.ty.name()), &input);
        }
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

/// Inputs of the `shards` target (see its header for the layout): the
/// blocks as the data of a 2-D or 3-D tensor, sharded by each rule.
fn shard_seeds(id: u8, blocks: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    // (name, flags: dims - 1 | on disk 4 | mode << 3, dims, four u32s)
    let cases: [(&str, u8, [u8; 4], [u32; 4]); 5] = [
        ("range", 1, [4, 5, 0, 0], [1, 4, 1, 3]),
        ("rows", 1 | 3 << 3, [2, 7, 0, 0], [1, 3, 0, 0]),
        ("cols", 1 | 4 << 3, [6, 2, 0, 0], [1, 4, 0, 0]),
        ("megatron-disk", 2 | 4 | 5 << 3, [4, 3, 2, 0], [1, 2, 0, 3]),
        ("empty", 2 | 7 << 3, [3, 0, 0xc0 | 40, 0], [0, 5, 0, 0]),
    ];
    cases
        .iter()
        .map(|&(name, flags, dims, p)| {
            let mut v = vec![id, flags];
            v.extend_from_slice(&dims);
            for x in p {
                v.extend_from_slice(&x.to_le_bytes());
            }
            v.extend_from_slice(blocks);
            (name, v)
        })
        .collect()
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
