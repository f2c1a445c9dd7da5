//! Test helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

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

/// Shards in tests: slicing whole tensors, putting parts back together, and
/// a Llama-shaped layer to split.
pub mod shards {
    use gguf_dequant::gguf::{GgufFile, GgufWriter, TensorInfo};
    use gguf_dequant::shard::Shard;
    use gguf_dequant::synth::{random_blocks, Rng};
    use gguf_dequant::{GgmlType, OutElem};

    /// (rows, columns) of a tensor's row-major view.
    fn dims(t: &TensorInfo) -> (usize, usize) {
        (t.ne[1..].iter().product::<u64>() as usize, t.ne[0] as usize)
    }

    /// The shard's values sliced out of the whole tensor's.
    pub fn slice<O: OutElem>(whole: &[O], t: &TensorInfo, s: &Shard) -> Vec<O> {
        let cols = dims(t).1;
        s.rows
            .clone()
            .flat_map(|r| {
                let row = r as usize * cols;
                whole[row + s.cols.start as usize..row + s.cols.end as usize].to_vec()
            })
            .collect()
    }

    /// Puts shards of `t` (each with its values) back together, row-major;
    /// what no shard covers stays NaN.
    pub fn gather<O: OutElem>(t: &TensorInfo, parts: &[(&Shard, &[O])]) -> Vec<O> {
        let (rows, cols) = dims(t);
        let mut out = vec![O::from_f32(f32::NAN); rows * cols];
        for (s, values) in parts {
            let width = (s.cols.end - s.cols.start) as usize;
            for (k, r) in s.rows.clone().enumerate() {
                let at = r as usize * cols + s.cols.start as usize;
                out[at..at + width].copy_from_slice(&values[k * width..(k + 1) * width]);
            }
        }
        out
    }

    /// Checks the ranks' parts of `t` (each shard with its values) against
    /// the whole tensor's values `want`: a replicated tensor whole on every
    /// rank, a split one gathered.
    pub fn check_ranks<O: OutElem + super::Bits>(
        t: &TensorInfo,
        parts: &[(&Shard, &[O])],
        want: &[O],
        over: &str,
    ) {
        use gguf_dequant::shard::Split;
        if Split::megatron(t) == Split::Replicate {
            for (_, p) in parts {
                super::assert_bits_eq(&format!("{} replicated", t.name), p, want);
            }
        } else {
            let got = gather(t, parts);
            super::assert_bits_eq(&format!("{} over {over}", t.name), &got, want);
        }
    }

    /// A Llama-shaped layer (hidden 768, ffn 1536, the types of a Q4_K_M
    /// file): 3 and 6 blocks a row, so that columns split unevenly over 2.
    pub fn llama_layer() -> GgufFile {
        let (h, ffn) = (768, 1536);
        let layer: [(&str, GgmlType, [u64; 2]); 9] = [
            ("attn_norm", GgmlType::F32, [h, 1]),
            ("attn_q", GgmlType::Q4_K, [h, h]),
            ("attn_k", GgmlType::Q4_K, [h, 256]),
            ("attn_v", GgmlType::Q6_K, [h, 256]),
            ("attn_output", GgmlType::Q4_K, [h, h]),
            ("ffn_norm", GgmlType::F32, [h, 1]),
            ("ffn_gate", GgmlType::Q4_K, [h, ffn]),
            ("ffn_up", GgmlType::Q4_K, [h, ffn]),
            ("ffn_down", GgmlType::Q6_K, [ffn, h]),
        ];
        let mut w = GgufWriter::new();
        let mut rng = Rng(5);
        for (name, ty, ne) in layer {
            let blocks = (ne[0] * ne[1]) as usize / ty.block_elems();
            let ne: &[u64] = if ne[1] == 1 { &ne[..1] } else { &ne };
            let data = random_blocks(ty, blocks, &mut rng);
            w.add_tensor(format!("blk.0.{name}.weight"), ty, ne, data)
                .unwrap();
        }
        GgufFile::from_bytes(w.to_bytes()).unwrap()
    }
}

/// A fresh folder in the temporary directory, removed with everything in it
/// when dropped (a test that fails still cleans up as it unwinds).
pub struct TempDir(PathBuf);

impl TempDir {
    /// `gdq-{label}-{pid}`, emptied first if a killed run left it behind.
    pub fn new(label: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("gdq-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A terminal: (the master side, the slave side's path).
pub fn pty() -> (std::fs::File, PathBuf) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain libc calls on a descriptor this test owns; ptsname_r
    // writes a NUL-terminated name into the buffer it is given.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0);
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(master, name.as_mut_ptr(), name.len()), 0);
        let name = std::ffi::CStr::from_ptr(name.as_ptr()).to_str().unwrap();
        (std::fs::File::from_raw_fd(master), PathBuf::from(name))
    }
}

/// f32 bit patterns covering each case of rounding to f16 and bf16.
pub fn rounding_patterns() -> Vec<u32> {
    let mut v: Vec<u32> = Vec::new();
    let mut rng = Rng(0x726f756e64);
    fn near(v: &mut Vec<u32>, center: u32, radius: u32) {
        v.extend(center - radius..=center + radius);
    }
    // infinities, zeros, the largest finite f32 and the f32 subnormal edges
    v.extend([
        0x7f80_0000,
        0x0000_0000,
        0x7f7f_ffff,
        0x0000_0001,
        0x007f_ffff,
        0x0080_0000,
    ]);
    // NaNs: quiet and signalling, payloads in the bits f16 keeps and the bits it drops
    v.extend([
        0x7fc0_0000,
        0x7f80_0001,
        0x7fa0_0000,
        0x7fbf_ffff,
        0x7fff_ffff,
        0x7f80_2000,
    ]);
    v.extend([
        0x7f80_1fff,
        0x7fc0_1000,
        0x7f81_0000,
        0x7f80_8000,
        0x7f80_00ff,
    ]);
    for _ in 0..2000 {
        v.push(0x7f80_0000 | (1 + (rng.next_u64() as u32 % 0x7f_ffff)));
    }
    // f16: around its largest finite value 65504 (0x477fe000) and the first value
    // that rounds to infinity, 65520 (0x477ff000)
    near(&mut v, 0x477f_e000, 4200);
    near(&mut v, 0x477f_f000, 4200);
    near(&mut v, 0x4780_0000, 16);
    // f16: the normal/subnormal boundary 2^-14, and the smallest subnormal 2^-24
    // with the ties to zero at 2^-25 and to 2^-24 at 1.5 * 2^-24
    near(&mut v, 0x3880_0000, 4200);
    near(&mut v, 0x387f_e000, 4200);
    near(&mut v, 0x3380_0000, 64);
    near(&mut v, 0x3300_0000, 64);
    near(&mut v, 0x33c0_0000, 64);
    // every exponent, with mantissas at and around the f16 (13 dropped bits) and
    // bf16 (16 dropped bits) rounding ties, odd and even kept parts
    for e in 0..=255u32 {
        for m in [
            0, 1, 0x7f_ffff, 0x1000, 0x0fff, 0x1001, 0x3000, 0x2fff, 0x3001, 0x8000, 0x7fff,
            0x8001, 0x1_8000, 0x1_7fff, 0x1_8001, 0x7f_8000, 0x7f_f000, 0x40_0000,
        ] {
            v.push((e << 23) | m);
        }
        for _ in 0..64 {
            v.push((e << 23) | (rng.next_u64() as u32 & 0x7f_ffff));
        }
    }
    // f16 subnormal results: every exponent whose values land there, tie patterns
    for e in 103..=112u32 {
        // bits dropped when the result is a multiple of 2^-24: |x| = 1.m * 2^(e-127)
        let shift = 126 - e;
        for k in 0..512u32 {
            let kept = rng.next_u64() as u32 & 0x7f_ffff & !((1 << shift) - 1);
            let tie = (e << 23) | kept | (1 << (shift - 1));
            v.extend([tie - 1, tie, tie + 1]);
            v.push((e << 23) | ((k * 0x4001) & 0x7f_ffff));
        }
    }
    // any bits
    for _ in 0..200_000 {
        v.push(rng.next_u64() as u32);
    }
    // both signs of everything
    let n = v.len();
    for i in 0..n {
        v.push(v[i] ^ 0x8000_0000);
    }
    v
}

/// A seed that differs between runs (printed, to reproduce a failure).
pub fn fresh_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let seed = t.as_nanos() as u64 ^ std::process::id() as u64;
    println!("seed {seed}");
    seed
}

/// Random valid blocks of every decodable type in the counts the kernel
/// tests use: 1 block; 7; 333, enough that 256-thread blocks do not divide
/// the work; the plain types' counts times 8 plus 3, so that their
/// one-element tail kernel runs too. (type, block count, bytes).
pub fn kernel_cases(rng: &mut gguf_dequant::synth::Rng) -> Vec<(GgmlType, usize, Vec<u8>)> {
    let mut cases = Vec::new();
    for ty in GgmlType::dequantizable() {
        for n_blocks in [1usize, 7, 333] {
            let n_blocks = if ty.block_elems() == 1 {
                n_blocks * 8 + 3
            } else {
                n_blocks
            };
            cases.push((
                ty,
                n_blocks,
                gguf_dequant::synth::random_blocks(ty, n_blocks, rng),
            ));
        }
    }
    cases
}
