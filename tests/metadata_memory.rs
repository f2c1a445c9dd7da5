//! Memory and time of the commands on a file whose metadata holds one array of
//! 64 Mi u8 elements: each command peaks at most at twice the metadata's bytes
//! in the file plus 64 MiB (arrays are held packed, `inspect --json` streams).
#![cfg(target_os = "linux")]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::reported_peak_kb;
use gguf_dequant::gguf::{Array, GgufFile, GgufWriter, Value};
use gguf_dequant::GgmlType;

const ELEMS: usize = 64 << 20;
/// Generous for the debug profile: each command takes well under a few seconds.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// A folder under the temp directory, removed with what it holds on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!(
            "gguf-dequant-metadata-memory-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one run of the binary did.
struct Run {
    peak_kb: u64,
    time: Duration,
    stdout_bytes: u64,
    stdout_tail: Vec<u8>,
}

/// Runs the binary with `args`, reading its standard output as it comes (kept:
/// its length and its last bytes), and returns its peak RSS and time.
fn run(args: &[&str]) -> Run {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gguf-dequant"))
        .args(args)
        .env("GDQ_REPORT_PEAK_RSS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let (mut stdout_bytes, mut stdout_tail) = (0u64, Vec::new());
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        stdout_bytes += n as u64;
        stdout_tail.extend_from_slice(&buf[..n]);
        let cut = stdout_tail.len().saturating_sub(256);
        stdout_tail.drain(..cut);
    }
    let out = child.wait_with_output().unwrap();
    let time = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {err}");
    let peak_kb = reported_peak_kb(&err);
    Run {
        peak_kb,
        time,
        stdout_bytes,
        stdout_tail,
    }
}

/// The file: one u8 array of `ELEMS` elements, a string, and a tiny tensor.
fn write_file(path: &Path) {
    let mut w = GgufWriter::new();
    w.add_kv("general.name", Value::String("big array".into()))
        .unwrap();
    let items: Vec<u8> = (0..ELEMS).map(|i| (i % 251) as u8).collect();
    w.add_kv("big.array", Array::U8(items).into()).unwrap();
    w.add_tensor("t", GgmlType::F32, &[8], [0u8; 32]).unwrap();
    w.write_file(path).unwrap();
}

#[test]
fn commands_on_a_64_mi_element_array_stay_within_twice_the_metadata() {
    let dir = TempDir::new();
    let file = dir.0.join("big.gguf");
    let start = Instant::now();
    write_file(&file);
    eprintln!("wrote the file in {:.2?}", start.elapsed());
    let metadata_bytes = {
        let f = GgufFile::open(&file).unwrap();
        assert_eq!(f.get("big.array").unwrap().as_array().unwrap().len(), ELEMS);
        f.data_offset()
    };
    assert!(metadata_bytes > ELEMS as u64);
    let limit_kb = (2 * metadata_bytes + (64 << 20)) / 1024;
    let path = file.to_str().unwrap();
    let out = dir.0.join("out.safetensors");
    let cases: [(&str, Vec<&str>); 3] = [
        ("inspect", vec!["inspect", path]),
        ("inspect --json", vec!["inspect", "--json", path]),
        (
            "convert",
            vec!["convert", path, "-o", out.to_str().unwrap()],
        ),
    ];
    let mut failures = Vec::new();
    for (name, args) in &cases {
        let r = run(args);
        eprintln!(
            "{name}: peak {} kB (limit {limit_kb} kB), {:.2?}, {} bytes of output",
            r.peak_kb, r.time, r.stdout_bytes
        );
        if r.peak_kb > limit_kb {
            failures.push(format!("{name} peaked at {} kB > {limit_kb} kB", r.peak_kb));
        }
        if r.time > TIME_LIMIT {
            failures.push(format!("{name} took {:.2?}", r.time));
        }
        if *name == "inspect --json" {
            // Every element written, one per line, then the rest of the document.
            assert!(
                r.stdout_bytes > 2 * ELEMS as u64,
                "{} bytes",
                r.stdout_bytes
            );
            let tail = String::from_utf8_lossy(&r.stdout_tail);
            assert!(tail.ends_with("\"version\": 3\n}\n"), "{tail}");
            assert!(tail.contains("\"name\": \"t\""), "{tail}");
        }
        if *name == "inspect" {
            let tail = String::from_utf8_lossy(&r.stdout_tail);
            assert!(r.stdout_bytes < 4096, "{tail}");
        }
    }
    assert!(std::fs::metadata(&out).unwrap().len() > 0);
    assert!(failures.is_empty(), "{failures:?}");
}
