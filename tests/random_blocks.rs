//! Random valid blocks of every type, decoded by every path, against gguf-py.
//!
//! `tests/fixtures/random-blocks.bin` (made by `scripts/gen_random_fixtures.py`,
//! which documents its format) holds random blocks of each type gguf-py 0.19.0
//! can dequantize, in tensors of 1, 7 and 100 blocks, with gguf-py's f32 output,
//! which is ggml's to the bit. Random bytes reach codes, grid indices, sign
//! patterns and sub-block scales that quantized real weights may never use.
//!
//! Each record goes through the CPU reference, the threaded CPU path and the
//! host-emulated kernels (with the full grid, and with the grid capped at 1 and 3
//! blocks so that the grid-stride loop turns and the last thread block is
//! partial), into f32 (bit-identical to gguf-py) and f16/bf16 (gguf-py's value
//! rounded to nearest even). Every output starts as NaN, so an element a path
//! forgets to write fails the comparison. The largest record of each type is
//! also tiled into a tensor big enough to span several threaded chunks and
//! several turns of the grid-stride loop.
//!
//! q1_0 and q2_0, which gguf-py lacks, are checked path against path on fresh
//! random blocks; the f16/bf16 output rounding of the kernels is checked against
//! the `half` crate on f32 bit patterns chosen to hit every rounding case.

mod common;

use std::sync::OnceLock;

use common::*;
use gguf_dequant::cpu::{self, OutElem};
#[cfg(feature = "cuda")]
use gguf_dequant::emulated;
use gguf_dequant::kernels::{KernelInfo, THREADS};
use gguf_dequant::GgmlType;
use half::{bf16, f16};

// ---- the fixture file ----

const MAGIC: &[u8; 8] = b"GDQRB001";

/// One tensor of the fixture: blocks of `ty` and gguf-py's values for them.
struct Record {
    ty: GgmlType,
    n_blocks: usize,
    quant: Vec<u8>,
    expected: Vec<f32>,
}

/// Reads the little-endian fields of the fixture, naming the offset of a short read.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> &'a [u8] {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.unwrap_or_else(|| {
            panic!(
                "random-blocks.bin: {what} ({n} bytes) at byte {} runs past the end",
                self.pos
            )
        });
        let s = &self.buf[self.pos..end];
        self.pos = end;
        s
    }
    fn u32(&mut self, what: &str) -> u32 {
        u32::from_le_bytes(self.take(4, what).try_into().unwrap())
    }
    fn u64(&mut self, what: &str) -> usize {
        u64::from_le_bytes(self.take(8, what).try_into().unwrap()) as usize
    }
}

fn parse(buf: &[u8]) -> Vec<Record> {
    let mut r = Reader { buf, pos: 0 };
    assert_eq!(r.take(8, "magic"), MAGIC, "random-blocks.bin: bad magic");
    let n_records = r.u32("record count");
    let mut out = Vec::new();
    for i in 0..n_records {
        let at = r.pos;
        let id = r.u32("type id");
        let ty = GgmlType::from_id(id)
            .unwrap_or_else(|| panic!("record {i} at byte {at}: unknown type id {id}"));
        let name_len = r.u32("name length") as usize;
        let name = std::str::from_utf8(r.take(name_len, "type name")).unwrap();
        assert_eq!(name, ty.name(), "record {i} at byte {at}: id {id}");
        let n_blocks = r.u32("block count") as usize;
        let n_elems = r.u64("element count");
        let n_bytes = r.u64("byte count");
        assert_eq!(n_elems, n_blocks * ty.block_elems(), "record {i} ({ty})");
        assert_eq!(n_bytes, n_blocks * ty.block_bytes(), "record {i} ({ty})");
        let quant = r.take(n_bytes, "blocks").to_vec();
        let expected: Vec<f32> = r
            .take(4 * n_elems, "expected values")
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        // Finite values are what make the NaN poison of the outputs detect gaps.
        assert!(
            expected.iter().all(|v| v.is_finite()),
            "record {i} ({ty}): non-finite expected value"
        );
        out.push(Record {
            ty,
            n_blocks,
            quant,
            expected,
        });
    }
    assert_eq!(
        r.pos,
        buf.len(),
        "random-blocks.bin: bytes after the last record"
    );
    out
}

fn records() -> &'static [Record] {
    static RECORDS: OnceLock<Vec<Record>> = OnceLock::new();
    RECORDS.get_or_init(|| parse(&std::fs::read(fixture("random-blocks.bin")).unwrap()))
}

// ---- the decode paths ----

#[derive(Clone, Copy, Debug)]
enum Path {
    Reference,
    Threaded,
    #[cfg(feature = "cuda")]
    Emulated,
    /// The emulated kernels with the grid capped at this many thread blocks.
    #[cfg(feature = "cuda")]
    EmulatedGrid(u32),
}

/// Every path this build has: the CPU's, and the emulated kernels' with the
/// `cuda` feature.
fn all_paths() -> Vec<Path> {
    let cpu = [Path::Reference, Path::Threaded];
    #[cfg(feature = "cuda")]
    return [
        &cpu[..],
        &[Path::Emulated, Path::EmulatedGrid(1), Path::EmulatedGrid(3)],
    ]
    .concat();
    #[cfg(not(feature = "cuda"))]
    cpu.to_vec()
}

/// Decodes `src` along `path` into an output poisoned with NaN.
fn decode<O: OutElem>(path: Path, ty: GgmlType, src: &[u8], n: usize) -> Vec<O> {
    let mut out = vec![O::from_f32(f32::NAN); n];
    let res = match path {
        Path::Reference => cpu::dequantize_reference(ty, src, &mut out),
        Path::Threaded => cpu::dequantize(ty, src, &mut out),
        #[cfg(feature = "cuda")]
        Path::Emulated => emulated::dequantize(ty, src, &mut out),
        #[cfg(feature = "cuda")]
        Path::EmulatedGrid(g) => emulated::dequantize_with_grid(ty, src, &mut out, g),
    };
    res.unwrap_or_else(|e| panic!("{ty} {path:?}: {e}"));
    out
}

fn check_out<O: OutElem + Bits>(what: &str, ty: GgmlType, src: &[u8], want: &[O], paths: &[Path]) {
    for &path in paths {
        let got = decode::<O>(path, ty, src, want.len());
        assert_bits_eq(&format!("{what} {path:?} {}", O::OUT), &got, want);
    }
}

/// `paths` decode `src` into `want` in f32, and into `want` rounded to nearest
/// even in f16 and bf16.
fn check_paths(what: &str, ty: GgmlType, src: &[u8], want: &[f32], paths: &[Path]) {
    check_out::<f32>(what, ty, src, want, paths);
    check_out::<f16>(what, ty, src, &to_f16(want), paths);
    check_out::<bf16>(what, ty, src, &to_bf16(want), paths);
}

/// Blocks in a tensor big enough for several threaded chunks (`cpu::dequantize`
/// splits at 2^16 elements) and, with the grid capped at 3 thread blocks, at
/// least two turns of the grid-stride loop with a partial last thread block.
fn big_block_count(ty: GgmlType) -> usize {
    // A kernel's block is the type's block (one element for f32/f16/bf16), and
    // `parts` threads decode it.
    let parts = KernelInfo::of(ty)
        .unwrap_or_else(|| panic!("{ty} has no kernel"))
        .parts as usize;
    let threads = THREADS as usize;
    let mut n = 150_000usize
        .div_ceil(ty.block_elems())
        .max((2 * 3 * threads + 1).div_ceil(parts));
    while (n * parts).is_multiple_of(threads) {
        n += 1;
    }
    n
}

/// `n` blocks taken cyclically from `rec`, and their expected values.
fn tile(rec: &Record, n: usize) -> (Vec<u8>, Vec<f32>) {
    let (bb, qk) = (rec.ty.block_bytes(), rec.ty.block_elems());
    let mut quant = Vec::with_capacity(n * bb);
    let mut expected = Vec::with_capacity(n * qk);
    for i in 0..n {
        let j = i % rec.n_blocks;
        quant.extend_from_slice(&rec.quant[j * bb..(j + 1) * bb]);
        expected.extend_from_slice(&rec.expected[j * qk..(j + 1) * qk]);
    }
    (quant, expected)
}

/// Every record of `ty`, and the tiled tensor, through every path, against gguf-py.
fn check_type(ty: GgmlType) {
    if NOT_IN_GGUF_PY.contains(&ty) {
        return check_against_reference(ty, 0x7100 + ty.id() as u64, &all_paths());
    }
    let recs: Vec<&Record> = records().iter().filter(|r| r.ty == ty).collect();
    assert!(!recs.is_empty(), "random-blocks.bin has no {ty} record");
    for r in &recs {
        let what = format!("{ty} x{}", r.n_blocks);
        check_paths(&what, ty, &r.quant, &r.expected, &all_paths());
    }
    let largest = recs.iter().max_by_key(|r| r.n_blocks).unwrap();
    let n = big_block_count(ty);
    let (quant, expected) = tile(largest, n);
    check_paths(
        &format!("{ty} tiled x{n}"),
        ty,
        &quant,
        &expected,
        &all_paths(),
    );
}

/// The types gguf-py 0.19.0 cannot decode, so the fixture lacks.
const NOT_IN_GGUF_PY: [GgmlType; 2] = [GgmlType::Q1_0, GgmlType::Q2_0];

#[test]
fn fixture_covers_every_type_gguf_py_decodes() {
    let recs = records();
    for ty in GgmlType::dequantizable().filter(|t| !NOT_IN_GGUF_PY.contains(t)) {
        let sizes: Vec<usize> = recs
            .iter()
            .filter(|r| r.ty == ty)
            .map(|r| r.n_blocks)
            .collect();
        for want in [1, 7, 100] {
            assert!(sizes.contains(&want), "{ty}: no record of {want} blocks");
        }
    }
    assert!(recs.iter().all(|r| !NOT_IN_GGUF_PY.contains(&r.ty)));
}

/// One test per format of the list (`src/formats.rs`), named after it.
macro_rules! per_type {
    ($( $file:ident { $( $ty:ident => $name:ident : $parts:literal $(/ $tail:ident)? ),+ } )*) => {
        mod each_type {
            use gguf_dequant::GgmlType;
            $( $( #[test] fn $name() { super::check_type(GgmlType::$ty); } )+ )*
        }
    };
}
gguf_dequant::for_each_format!(per_type);

// ---- q1_0 and q2_0: path against path (their per-type tests) ----

/// A finite f16 scale as the fixture's: mostly |d| in [1e-4, 1], sometimes an
/// f16 subnormal or a signed zero, random sign.
fn random_scale(rng: &mut Rng) -> u16 {
    let sign = if rng.next_u64() & 1 == 1 { 0x8000 } else { 0 };
    let r = rng.next_u64() % 100;
    if r < 4 {
        return sign | (1 + (rng.next_u64() % 0x3ff) as u16);
    }
    if r < 6 {
        return sign;
    }
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    sign | f16::from_f64(10f64.powf(-4.0 + 4.0 * u)).to_bits()
}

/// `n` random blocks of a format whose only float field is an f16 `d` at byte 0.
fn random_d_blocks(ty: GgmlType, n: usize, rng: &mut Rng) -> Vec<u8> {
    let mut src = vec![0u8; n * ty.block_bytes()];
    rng.fill(&mut src);
    for b in src.chunks_exact_mut(ty.block_bytes()) {
        b[..2].copy_from_slice(&random_scale(rng).to_le_bytes());
    }
    src
}

/// Fresh random tensors of `ty`: 1, 7, 100 blocks and one past several threaded
/// chunks; `paths` must give the CPU reference's output to the bit.
fn check_against_reference(ty: GgmlType, seed: u64, paths: &[Path]) {
    let mut rng = Rng(seed);
    for n in [1, 7, 100, big_block_count(ty)] {
        let src = random_d_blocks(ty, n, &mut rng);
        let want: Vec<f32> = decode(Path::Reference, ty, &src, n * ty.block_elems());
        assert!(
            want.iter().all(|v| v.is_finite()),
            "{ty} x{n}: the reference left NaN or wrote a non-finite value"
        );
        check_paths(&format!("{ty} x{n}"), ty, &src, &want, paths);
    }
}

// ---- output rounding ----

#[test]
fn output_rounding_matches_half() {
    let bits = rounding_patterns();
    let src: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    let values: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
    let want16: Vec<f16> = values.iter().map(|&x| f16::from_f32(x)).collect();
    let wantb16: Vec<bf16> = values.iter().map(|&x| bf16::from_f32(x)).collect();
    let paths = &all_paths()[1..];
    // f32 passes every bit through, NaN payloads included
    let got: Vec<f32> = decode(*paths.last().unwrap(), GgmlType::F32, &src, bits.len());
    let got_bits: Vec<u32> = got.iter().map(|x| x.to_bits()).collect();
    assert!(got_bits == bits, "emulated f32 -> f32 must copy bits");
    check_out::<f16>("f32 patterns", GgmlType::F32, &src, &want16, paths);
    check_out::<bf16>("f32 patterns", GgmlType::F32, &src, &wantb16, paths);
}
