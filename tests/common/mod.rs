//! Test helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use gguf_dequant::GgmlType;
use half::{bf16, f16};

/// A file of `tests/fixtures`, or of the folder `GDQ_FIXTURES` names (a test
/// binary carried to another machine, where the source tree is not).
pub fn fixture(name: &str) -> PathBuf {
    std::env::var_os("GDQ_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
        .join(name)
}

/// One tensor of the real-weights fixture: ggml's quantized bytes and ggml's
/// own dequantized f32 values, located through the manifest's byte offsets
/// (independently of our GGUF reader).
pub struct RealTensor {
    pub name: String,
    pub ty: GgmlType,
    pub ne: Vec<u64>,
    pub quant: Vec<u8>,
    pub expected: Vec<f32>,
}

pub fn real_tensors() -> Vec<RealTensor> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("manifest.json")).unwrap()).unwrap();
    let quant_file = std::fs::read(fixture("real-weights.gguf")).unwrap();
    let expected_file = std::fs::read(fixture("real-weights.expected.gguf")).unwrap();
    let mut out = Vec::new();
    for t in manifest["tensors"].as_array().unwrap() {
        let ty = GgmlType::from_id(t["type_id"].as_u64().unwrap() as u32).unwrap();
        assert_eq!(ty.name(), t["ggml_type"].as_str().unwrap());
        let n = t["n_elements"].as_u64().unwrap() as usize;
        let qoff = t["data_offset_in_file"].as_u64().unwrap() as usize;
        let qlen = t["quant_bytes"].as_u64().unwrap() as usize;
        let eoff = t["data_offset_in_expected_file"].as_u64().unwrap() as usize;
        let expected = expected_file[eoff..eoff + 4 * n]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        out.push(RealTensor {
            name: t["name"].as_str().unwrap().to_string(),
            ty,
            ne: t["ne_ggml"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect(),
            quant: quant_file[qoff..qoff + qlen].to_vec(),
            expected,
        });
    }
    out
}

/// f32 values rounded to nearest even into f16 and bf16: what those outputs must hold.
pub fn to_f16(v: &[f32]) -> Vec<f16> {
    v.iter().map(|&x| f16::from_f32(x)).collect()
}
pub fn to_bf16(v: &[f32]) -> Vec<bf16> {
    v.iter().map(|&x| bf16::from_f32(x)).collect()
}

/// Asserts two slices are bit-identical, naming the first difference.
pub fn assert_bits_eq<T: Bits>(what: &str, got: &[T], want: &[T]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].bits() != want[i].bits()) {
        let n = (0..got.len())
            .filter(|&i| got[i].bits() != want[i].bits())
            .count();
        panic!(
            "{what}: {n} of {} values differ; first at {i}: got {:#x}, want {:#x}",
            got.len(),
            got[i].bits(),
            want[i].bits()
        );
    }
}

/// As [`assert_bits_eq`], but any NaN matches any NaN: for inputs with NaN
/// scales, whose NaN signs and payloads are not part of the contract.
pub fn assert_same_values<T: Bits>(what: &str, got: &[T], want: &[T]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let same = |i: usize| got[i].bits() == want[i].bits() || (got[i].is_nan() && want[i].is_nan());
    if let Some(i) = (0..got.len()).find(|&i| !same(i)) {
        panic!(
            "{what}: first difference at {i}: got {:#x}, want {:#x}",
            got[i].bits(),
            want[i].bits()
        );
    }
}

pub trait Bits: Copy {
    fn bits(self) -> u32;
    fn is_nan(self) -> bool;
}
impl Bits for f32 {
    fn bits(self) -> u32 {
        self.to_bits()
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}
impl Bits for f16 {
    fn bits(self) -> u32 {
        self.to_bits() as u32
    }
    fn is_nan(self) -> bool {
        f16::is_nan(self)
    }
}
impl Bits for bf16 {
    fn bits(self) -> u32 {
        self.to_bits() as u32
    }
    fn is_nan(self) -> bool {
        bf16::is_nan(self)
    }
}

/// A small deterministic generator (SplitMix64), so tests need no crate for it.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
}

/// The peak resident memory (kB) a run printed on stderr with
/// `GDQ_REPORT_PEAK_RSS` set (`VmHWM: N kB`).
pub fn reported_peak_kb(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM reported");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
