//! The malformed-file corpus: each file is built byte by byte (the writer
//! refuses to write such things), read, and must be refused with an error that
//! names the problem. The same files are kept in `tests/corpus/malformed/`
//! (and `tests/corpus/malformed.index.json`: file → expected error substring) for the CLI's tests;
//! `corpus_files_are_current` checks they match, and rewrites them when run with
//! `GGUF_WRITE_CORPUS=1`:
//!
//!     GGUF_WRITE_CORPUS=1 cargo test --test malformed corpus_files_are_current

use std::path::PathBuf;

use gguf_dequant::gguf::{GgufFile, GgufWriter, Value, ValueType};
use gguf_dequant::{Error, GgmlType};

/// A byte-level GGUF builder that writes whatever it is told.
#[derive(Clone, Default)]
struct B(Vec<u8>);

impl B {
    /// Magic, version, tensor count, key-value count.
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        B::default()
            .raw(b"GGUF")
            .u32(version)
            .u64(n_tensors)
            .u64(n_kv)
    }
    fn v3(n_tensors: u64, n_kv: u64) -> Self {
        Self::header(3, n_tensors, n_kv)
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    fn u8(self, v: u8) -> Self {
        self.raw(&[v])
    }
    fn u32(self, v: u32) -> Self {
        self.raw(&v.to_le_bytes())
    }
    fn u64(self, v: u64) -> Self {
        self.raw(&v.to_le_bytes())
    }
    /// A GGUF string: u64 length and the bytes.
    fn str(self, s: &[u8]) -> Self {
        self.u64(s.len() as u64).raw(s)
    }
    /// A key, its value type id, and the value's bytes as given.
    fn kv(self, key: &[u8], ty: u32, value: &[u8]) -> Self {
        self.str(key).u32(ty).raw(value)
    }
    fn kv_u32(self, key: &str, v: u32) -> Self {
        self.kv(key.as_bytes(), 4, &v.to_le_bytes())
    }
    /// A tensor info: name, n_dims = ne.len(), ne, type id, relative offset.
    fn tensor(self, name: &[u8], ne: &[u64], ty: u32, offset: u64) -> Self {
        let mut b = self.str(name).u32(ne.len() as u32);
        for &n in ne {
            b = b.u64(n);
        }
        b.u32(ty).u64(offset)
    }
    /// A tensor info with an explicit n_dims and dimensions that may disagree.
    fn tensor_dims(self, name: &[u8], n_dims: u32, ne: &[u64], ty: u32, offset: u64) -> Self {
        let mut b = self.str(name).u32(n_dims);
        for &n in ne {
            b = b.u64(n);
        }
        b.u32(ty).u64(offset)
    }
    /// Zero padding to a multiple of `align`.
    fn pad(self, align: usize) -> Self {
        let n = (align - self.0.len() % align) % align;
        self.zeros(n)
    }
    fn zeros(self, n: usize) -> Self {
        self.raw(&vec![0u8; n])
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    /// A substring the error message must contain.
    expect: &'static str,
}

const F32: u32 = 0;
const Q4_0: u32 = 2;
const I64: u32 = 27;

/// One f32 tensor `w` of 8 elements at offset 0, padded and with its data:
/// the valid file most cases start from.
fn one_tensor(b: B) -> B {
    b.tensor(b"w", &[8], F32, 0).pad(32).zeros(32)
}

fn cases() -> Vec<Case> {
    let mut c = Vec::new();
    let mut add = |name: &'static str, b: B, expect: &'static str| {
        c.push(Case {
            name,
            bytes: b.0,
            expect,
        })
    };

    // Magic and version.
    add("empty", B::default(), "too short to be GGUF");
    add(
        "magic_short",
        B::default().raw(b"GGU"),
        "too short to be GGUF",
    );
    add(
        "magic_bad",
        B::default().raw(b"GGML").u32(3).u64(0).u64(0),
        "bad magic",
    );
    add(
        "version_1",
        B::default().raw(b"GGUF").u32(1).u32(0).u32(0),
        "GGUF version 1 is not supported",
    );
    add(
        "big_endian_v3",
        B::default()
            .raw(b"GGUF")
            .raw(&3u32.to_be_bytes())
            .raw(&0u64.to_be_bytes())
            .raw(&0u64.to_be_bytes()),
        "big-endian GGUF",
    );
    add(
        "big_endian_v2",
        B::default().raw(b"GGUF").raw(&2u32.to_be_bytes()).zeros(16),
        "big-endian GGUF",
    );
    add(
        "version_99",
        B::header(99, 0, 0),
        "unsupported GGUF version 99",
    );
    add(
        "version_0",
        B::header(0, 0, 0),
        "unsupported GGUF version 0",
    );

    // Unbounded counts.
    add(
        "n_kv_max",
        B::v3(0, u64::MAX),
        "18446744073709551615 pairs cannot fit",
    );
    add(
        "n_kv_huge_fits_mul",
        B::v3(0, 1 << 40).zeros(64),
        "1099511627776 pairs cannot fit",
    );
    add(
        "n_tensors_max",
        B::v3(u64::MAX, 0),
        "18446744073709551615 tensor infos cannot fit",
    );
    add(
        "n_tensors_near_2_64",
        one_tensor(B::v3((1 << 63) + 1, 0)),
        "tensor infos cannot fit",
    );
    add(
        "array_len_max",
        B::v3(0, 1).str(b"a").u32(9).u32(0).u64(u64::MAX),
        "key 'a': array length 18446744073709551615 runs past the end",
    );
    add(
        "array_of_strings_len_huge",
        B::v3(0, 1)
            .str(b"tokenizer.ggml.tokens")
            .u32(9)
            .u32(8)
            .u64(1 << 62)
            .zeros(64),
        "array length 4611686018427387904 runs past the end",
    );
    add(
        "array_of_u64_len_overflow",
        B::v3(0, 1).str(b"a").u32(9).u32(10).u64(1 << 61).zeros(64),
        "array length 2305843009213693952 runs past the end",
    );

    // Strings past the end.
    add(
        "key_len_max",
        B::v3(0, 1).u64(u64::MAX).zeros(16),
        "key #0: name: string length 18446744073709551615 runs past the end",
    );
    add(
        "string_value_past_end",
        B::v3(0, 1)
            .str(b"general.name")
            .u32(8)
            .u64(1000)
            .raw(b"short"),
        "key 'general.name': string value: string length 1000 runs past the end",
    );
    add(
        "string_in_array_past_end",
        B::v3(0, 1)
            .str(b"tok")
            .u32(9)
            .u32(8)
            .u64(2)
            .str(b"ok")
            .u64(500)
            .zeros(8),
        "key 'tok': string value: string length 500 runs past the end",
    );
    add(
        "tensor_name_past_end",
        B::v3(1, 0).u64(1 << 40).zeros(40),
        "tensor #0: name: string length 1099511627776 runs past the end",
    );

    // Deep nesting: 1000 arrays of one array each.
    let mut deep = B::v3(0, 1).str(b"deep").u32(9);
    for _ in 0..1000 {
        deep = deep.u32(9).u64(1);
    }
    add(
        "nested_arrays_1000_deep",
        deep.u32(0).u64(1).u8(0),
        "key 'deep': arrays nested more than 8 deep",
    );

    // Bad value types.
    add(
        "value_type_unknown",
        B::v3(0, 1).kv(b"a", 13, &[0; 8]),
        "key 'a': unknown value type id 13",
    );
    add(
        "array_element_type_unknown",
        B::v3(0, 1).str(b"a").u32(9).u32(99).u64(1).zeros(8),
        "key 'a': unknown array element type id 99",
    );
    add(
        "bool_not_0_or_1",
        B::v3(0, 1).kv(b"flag", 7, &[2]),
        "key 'flag': bool value 2 is neither 0 nor 1",
    );

    // Invalid UTF-8 in names.
    add(
        "key_invalid_utf8",
        B::v3(0, 1).kv(b"gen\xffral", 4, &[0; 4]),
        "key #0: name is not valid UTF-8",
    );
    add(
        "tensor_name_invalid_utf8",
        B::v3(1, 0)
            .tensor(b"blk.\xc3(", &[8], F32, 0)
            .pad(32)
            .zeros(32),
        "tensor #0: name is not valid UTF-8",
    );

    // Duplicates.
    add(
        "duplicate_key",
        B::v3(0, 2).kv_u32("a.b", 1).kv_u32("a.b", 2),
        "duplicate key 'a.b'",
    );
    add(
        "duplicate_tensor_name",
        B::v3(2, 0)
            .tensor(b"w", &[8], F32, 0)
            .tensor(b"w", &[8], F32, 32)
            .pad(32)
            .zeros(64),
        "duplicate tensor name 'w'",
    );

    // n_dims.
    for (name, n) in [("n_dims_0", 0), ("n_dims_5", 5), ("n_dims_1000", 1000)] {
        let expect: &'static str = match n {
            0 => "tensor 'w': n_dims 0 is out of range 1..=4",
            5 => "tensor 'w': n_dims 5 is out of range 1..=4",
            _ => "tensor 'w': n_dims 1000 is out of range 1..=4",
        };
        add(
            name,
            B::v3(1, 0)
                .tensor_dims(b"w", n, &[8; 5], F32, 0)
                .pad(32)
                .zeros(64),
            expect,
        );
    }

    // Overflows.
    add(
        "ne_over_i64",
        B::v3(1, 0)
            .tensor(b"w", &[8, 1 << 63], F32, 0)
            .pad(32)
            .zeros(32),
        "tensor 'w': ne[1] = 9223372036854775808 exceeds 2^63-1",
    );
    add(
        "ne_product_overflow",
        B::v3(1, 0)
            .tensor(b"w", &[1 << 32, 1 << 32, 4], F32, 0)
            .pad(32)
            .zeros(32),
        "tensor 'w': element count of ne [4294967296, 4294967296, 4] overflows",
    );
    add(
        "empty_ne_product_overflow",
        B::v3(1, 0)
            .tensor(b"w", &[0, 4, 1 << 62], F32, 0)
            .pad(32),
        "tensor 'w': element count of ne [0, 4, 4611686018427387904] overflows 2^63-1 (a zero dimension aside)",
    );
    add(
        "empty_row_bytes_overflow",
        B::v3(1, 0)
            .tensor(b"w", &[1 << 62, 0], F32, 0)
            .pad(32),
        "tensor 'w': byte size of ne [4611686018427387904, 0] (a zero dimension aside) overflows 64 bits",
    );
    add(
        "nbytes_overflow",
        B::v3(1, 0)
            .tensor(b"w", &[1 << 62], I64, 0)
            .pad(32)
            .zeros(32),
        "tensor 'w': byte size of 4611686018427387904 i64 elements overflows 64 bits",
    );
    let h = B::v3(1, 0).tensor(b"w", &[32], F32, 0);
    let data_offset = h.len().div_ceil(32) * 32;
    add(
        "offset_plus_nbytes_overflow",
        B::v3(1, 0)
            .tensor(b"w", &[32], F32, (u64::MAX - data_offset) & !31)
            .pad(32)
            .zeros(128),
        "tensor 'w': offset 18446744073709551584 + size 128 overflows 64 bits",
    );
    add(
        "offset_plus_data_start_overflow",
        B::v3(1, 0).tensor(b"w", &[8], F32, !31).pad(32).zeros(32),
        "plus the data section start 64 overflows 64 bits",
    );

    // Type ids.
    for (name, id, expect) in [
        (
            "type_id_4_removed",
            4,
            "tensor 'w': unknown or removed ggml type id 4",
        ),
        (
            "type_id_5_removed",
            5,
            "tensor 'w': unknown or removed ggml type id 5",
        ),
        (
            "type_id_31_removed",
            31,
            "tensor 'w': unknown or removed ggml type id 31",
        ),
        (
            "type_id_33_removed",
            33,
            "tensor 'w': unknown or removed ggml type id 33",
        ),
        (
            "type_id_36_removed",
            36,
            "tensor 'w': unknown or removed ggml type id 36",
        ),
        (
            "type_id_38_removed",
            38,
            "tensor 'w': unknown or removed ggml type id 38",
        ),
        (
            "type_id_1000",
            1000,
            "tensor 'w': unknown or removed ggml type id 1000",
        ),
    ] {
        add(
            name,
            B::v3(1, 0).tensor(b"w", &[32], id, 0).pad(32).zeros(256),
            expect,
        );
    }
    add(
        "row_not_whole_blocks",
        B::v3(1, 0)
            .tensor(b"w", &[16, 2], Q4_0, 0)
            .pad(32)
            .zeros(64),
        "tensor 'w': row length ne[0] = 16 is not a multiple of the q4_0 block size 32",
    );

    // Alignment.
    for (name, b, expect) in [
        (
            "alignment_0",
            B::v3(1, 1).kv_u32("general.alignment", 0),
            "key 'general.alignment': 0 is not a power of two",
        ),
        (
            "alignment_3",
            B::v3(1, 1).kv_u32("general.alignment", 3),
            "key 'general.alignment': 3 is not a power of two",
        ),
        (
            "alignment_huge",
            B::v3(1, 1).kv_u32("general.alignment", 1 << 31),
            "key 'general.alignment': 2147483648 is not a power of two between 1 and 1048576",
        ),
        (
            "alignment_wrong_type_u64",
            B::v3(1, 1).kv(b"general.alignment", 10, &32u64.to_le_bytes()),
            "key 'general.alignment': must be a u32, found u64 32",
        ),
        (
            "alignment_wrong_type_string",
            B::v3(1, 1).kv(
                b"general.alignment",
                8,
                &[2, 0, 0, 0, 0, 0, 0, 0, b'3', b'2'],
            ),
            "key 'general.alignment': must be a u32, found string",
        ),
    ] {
        add(name, one_tensor(b), expect);
    }

    // Offsets.
    add(
        "offset_misaligned",
        B::v3(1, 0).tensor(b"w", &[8], F32, 16).pad(32).zeros(64),
        "tensor 'w': offset 16 is not a multiple of the alignment 32",
    );
    add(
        "offset_misaligned_custom_alignment",
        B::v3(1, 1)
            .kv_u32("general.alignment", 64)
            .tensor(b"w", &[8], F32, 32)
            .pad(64)
            .zeros(128),
        "tensor 'w': offset 32 is not a multiple of the alignment 64",
    );
    add(
        "offset_past_end",
        B::v3(1, 0)
            .tensor(b"w", &[8], F32, 1 << 20)
            .pad(32)
            .zeros(32),
        "tensor 'w': data [1048640, 1048672) extends past the end of the file (96 bytes)",
    );
    add(
        "data_past_end",
        B::v3(1, 0).tensor(b"w", &[16], F32, 0).pad(32).zeros(32),
        "tensor 'w': data [64, 128) extends past the end of the file (96 bytes)",
    );
    add(
        "tensors_overlap",
        B::v3(2, 0)
            .tensor(b"a", &[16], F32, 0)
            .tensor(b"b", &[16], F32, 32)
            .pad(32)
            .zeros(96),
        "tensors 'b' [128, 192) and 'a' [96, 160) overlap",
    );
    add(
        "tensors_overlap_nested",
        B::v3(3, 0)
            .tensor(b"big", &[64], F32, 0)
            .tensor(b"x", &[8], F32, 64)
            .tensor(b"y", &[8], F32, 128)
            .pad(32)
            .zeros(256),
        "tensors 'x' [192, 224) and 'big' [128, 384) overlap",
    );
    add(
        "tensors_same_offset",
        B::v3(2, 0)
            .tensor(b"a", &[8], F32, 0)
            .tensor(b"b", &[8], F32, 0)
            .pad(32)
            .zeros(32),
        "overlap",
    );

    // Truncations of a valid file (every byte offset is covered by a test below).
    let valid = valid_file();
    let f = GgufFile::from_bytes(valid.clone()).unwrap();
    let header_end = f.data_offset() as usize;
    add(
        "truncated_in_counts",
        B::default().raw(&valid[..20]),
        "key-value count: needs 8 bytes but the file ends after 4",
    );
    add(
        "truncated_in_metadata",
        B::default().raw(&valid[..find(&valid, b"</s>") + 2]),
        "key 'tokenizer.ggml.tokens': array length 3 runs past the end",
    );
    add(
        "truncated_in_tensor_infos",
        B::default().raw(&valid[..header_end - 20]),
        "file ends after",
    );
    add(
        "truncated_in_data",
        B::default().raw(&valid[..valid.len() - 40]),
        "extends past the end of the file",
    );

    c
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

/// A valid file with every value type and a few tensors.
fn valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::String("llama".into()))
        .unwrap();
    w.add_kv("general.alignment", Value::U32(64)).unwrap();
    for v in [
        Value::U8(1),
        Value::I8(-1),
        Value::U16(2),
        Value::I16(-2),
        Value::U32(3),
        Value::I32(-3),
        Value::F32(0.5),
        Value::Bool(true),
        Value::U64(4),
        Value::I64(-4),
        Value::F64(0.25),
    ] {
        w.add_kv(format!("k.{}", v.type_name()), v).unwrap();
    }
    w.add_kv(
        "tokenizer.ggml.tokens",
        Value::Array(
            ValueType::String,
            ["<s>", "</s>", "▁the"]
                .iter()
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
    )
    .unwrap();
    w.add_kv(
        "k.nested",
        Value::Array(
            ValueType::Array,
            vec![Value::Array(ValueType::U16, vec![Value::U16(7)])],
        ),
    )
    .unwrap();
    w.add_tensor("a", GgmlType::Q4_0, &[64, 2], vec![1u8; 72])
        .unwrap();
    w.add_tensor("b", GgmlType::F16, &[3], vec![2u8; 6])
        .unwrap();
    w.add_tensor("c", GgmlType::Q8_K, &[256], vec![3u8; 292])
        .unwrap();
    w.to_bytes()
}

fn read_error(bytes: &[u8]) -> Result<(u64, String), String> {
    match GgufFile::from_bytes(bytes.to_vec()) {
        Ok(_) => Err("the file was accepted".into()),
        Err(Error::Gguf { offset, message }) => Ok((offset, message)),
        Err(e) => Err(format!("not a GGUF error: {e}")),
    }
}

#[test]
fn every_malformed_file_is_refused_with_its_reason() {
    let cases = cases();
    let mut names = std::collections::HashSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "two cases named {}", case.name);
        assert!(
            !case.expect.is_empty(),
            "{}: no expected message",
            case.name
        );
        let (offset, message) =
            read_error(&case.bytes).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert!(
            message.contains(case.expect),
            "{}: error {message:?} lacks {:?}",
            case.name,
            case.expect
        );
        assert!(
            offset <= case.bytes.len() as u64,
            "{}: offset {offset} past the file",
            case.name
        );
        // The error's Display carries the offset too.
        let shown = GgufFile::from_bytes(case.bytes.clone())
            .unwrap_err()
            .to_string();
        assert!(shown.contains(&format!("at byte {offset}")), "{shown}");
    }
    assert!(cases.len() >= 40, "{} cases", cases.len());
}

#[test]
fn valid_base_files_read() {
    // The cases above differ from these in the one thing they break.
    GgufFile::from_bytes(one_tensor(B::v3(1, 0)).0).unwrap();
    GgufFile::from_bytes(valid_file()).unwrap();
    GgufFile::from_bytes(B::v3(0, 0).0).unwrap();
    let f = GgufFile::from_bytes(
        B::v3(2, 0)
            .tensor(b"b", &[8], F32, 32)
            .tensor(b"a", &[8], F32, 0)
            .pad(32)
            .zeros(64)
            .0,
    )
    .unwrap();
    assert_eq!(f.tensors()[0].offset, f.data_offset() + 32);
    // Deepest accepted nesting: 8 arrays.
    let mut deep = B::v3(0, 1).str(b"deep").u32(9);
    for _ in 0..7 {
        deep = deep.u32(9).u64(1);
    }
    GgufFile::from_bytes(deep.u32(0).u64(1).u8(0).0).unwrap();
}

#[test]
fn truncation_at_every_header_byte_and_in_the_data_is_an_error() {
    let valid = valid_file();
    let f = GgufFile::from_bytes(valid.clone()).unwrap();
    let last_end = f
        .tensors()
        .iter()
        .map(|t| t.offset + t.nbytes)
        .max()
        .unwrap() as usize;
    let mut cuts: Vec<usize> = (0..=f.data_offset() as usize).collect();
    cuts.extend([f.data_offset() as usize + 1, last_end - 100, last_end - 1]);
    for cut in cuts {
        let (offset, message) =
            read_error(&valid[..cut]).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert!(offset <= cut as u64, "cut at {cut}: offset {offset}");
        assert!(
            ["too short", "file ends", "past the end", "cannot fit"]
                .iter()
                .any(|s| message.contains(s)),
            "cut at {cut}: {message}"
        );
    }
    // Cutting only the padding after the last tensor keeps every tensor whole.
    GgufFile::from_bytes(valid[..last_end].to_vec()).unwrap();
}

#[test]
fn invalid_utf8_in_a_string_value_is_replaced_not_refused() {
    let f = GgufFile::from_bytes(B::v3(0, 1).kv(b"s", 8, b"\x03\0\0\0\0\0\0\0a\xffb").0).unwrap();
    assert_eq!(f.get("s"), Some(&Value::String("a\u{fffd}b".into())));
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/malformed")
}

fn index_path() -> PathBuf {
    corpus_dir().with_extension("index.json")
}

fn index_json(cases: &[Case]) -> String {
    let entries: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| serde_json::json!({ "file": format!("{}.gguf", c.name), "error": c.expect }))
        .collect();
    serde_json::to_string_pretty(&entries).unwrap() + "\n"
}

#[test]
fn corpus_files_are_current() {
    let cases = cases();
    let dir = corpus_dir();
    let index = index_json(&cases);
    if std::env::var_os("GGUF_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "gguf") {
                std::fs::remove_file(p).unwrap();
            }
        }
        for c in &cases {
            std::fs::write(dir.join(format!("{}.gguf", c.name)), &c.bytes).unwrap();
        }
        std::fs::write(index_path(), &index).unwrap();
    }
    let regen = "run `GGUF_WRITE_CORPUS=1 cargo test --test malformed corpus_files_are_current`";
    for c in &cases {
        let p = dir.join(format!("{}.gguf", c.name));
        let on_disk = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}; {regen}", p.display()));
        assert!(on_disk == c.bytes, "{} is stale; {regen}", p.display());
    }
    let on_disk = std::fs::read_to_string(index_path()).unwrap_or_default();
    assert!(on_disk == index, "index.json is stale; {regen}");
    let n_files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "gguf")
        })
        .count();
    assert_eq!(n_files, cases.len(), "stray files in the corpus; {regen}");
}
