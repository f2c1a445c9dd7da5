//! The command line against what a hostile or careless user gives it.
//!
//! `convert`'s output named as the input itself (directly, through a hard
//! link, through a symbolic link), a directory, a device, a FIFO, a name at the
//! filesystem's length limit, and a conversion interrupted by SIGINT, SIGTERM
//! or SIGKILL: the input is never harmed, nothing is written where it should
//! not be, and no partial output is ever left under a name. Inputs that are
//! not regular files; names built to drive the terminal or blow up the table;
//! standard output that cannot be written.

#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use gguf_dequant::gguf::GgufWriter;
use gguf_dequant::GgmlType;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gguf-dequant"))
}

/// A fresh folder for one test, with a copy of the real-weights fixture.
fn folder(test: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(&format!("out-{test}"));
    let input = dir.join("in.gguf");
    std::fs::copy(fixture("real-weights.gguf"), &input).unwrap();
    (dir, input)
}

fn convert(input: &Path, output: &str) -> Output {
    bin()
        .args([
            "convert",
            input.to_str().unwrap(),
            "-o",
            output,
            "--tensor",
            "minilm.q4_0",
        ])
        .output()
        .unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn refused(out: &Output, why: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(why), "expected '{why}' in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_input_is_never_the_output() {
    let (dir, input) = folder("same");
    let original = std::fs::read(&input).unwrap();
    std::fs::hard_link(&input, dir.join("hard.gguf")).unwrap();
    std::os::unix::fs::symlink(&input, dir.join("soft.gguf")).unwrap();
    for name in ["in.gguf", "hard.gguf", "soft.gguf", "./in.gguf"] {
        let target = match name.strip_prefix("./") {
            Some(rest) => format!("{}/./{rest}", dir.display()),
            None => dir.join(name).to_string_lossy().into_owned(),
        };
        refused(&convert(&input, &target), "is the input file");
        assert_eq!(
            std::fs::read(&input).unwrap(),
            original,
            "{name}: input changed"
        );
    }
    assert_eq!(names(&dir), ["hard.gguf", "in.gguf", "soft.gguf"]);
}

#[test]
fn directories_are_refused_before_any_work() {
    let (dir, input) = folder("dirs");
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    for target in [
        sub.to_string_lossy().into_owned(),
        format!("{}/", dir.join("new").display()),
        format!("{}/", sub.display()),
        "/".to_string(),
        ".".to_string(),
    ] {
        let start = Instant::now();
        refused(&convert(&input, &target), "director");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    refused(
        &convert(&input, &dir.join("missing/out.st").to_string_lossy()),
        "output directory",
    );
    assert_eq!(names(&dir), ["in.gguf", "sub"]);
    assert!(names(&sub).is_empty());
}

#[test]
fn a_symbolic_link_is_written_through() {
    let (dir, input) = folder("symlink");
    let real = dir.join("real.safetensors");
    std::fs::write(&real, b"old").unwrap();
    std::os::unix::fs::symlink(&real, dir.join("link.safetensors")).unwrap();
    let out = convert(&input, &dir.join("link.safetensors").to_string_lossy());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::symlink_metadata(dir.join("link.safetensors"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::metadata(&real).unwrap().len() > 1000);
    assert_eq!(
        names(&dir),
        ["in.gguf", "link.safetensors", "real.safetensors"]
    );
}

#[test]
fn devices_and_fifos_are_written_not_replaced() {
    let (dir, input) = folder("special");
    let out = convert(&input, "/dev/null");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());

    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || std::fs::read(reader_path).unwrap().len());
    let out = convert(&input, fifo.to_str().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(reader.join().unwrap() > 98304 * 4);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(names(&dir), ["fifo", "in.gguf"]);
}

#[test]
fn any_name_the_filesystem_takes_works() {
    let (dir, input) = folder("long");
    let name = "x".repeat(250) + ".st";
    let out = convert(&input, &dir.join(&name).to_string_lossy());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(names(&dir), ["in.gguf".to_string(), name]);
}

/// A file big enough that converting it takes seconds: f16 tensors, all zeros
/// (a sparse file), decoded to f32.
fn big_input(dir: &Path) -> PathBuf {
    let path = dir.join("big.gguf");
    let mut w = GgufWriter::new();
    for i in 0..16 {
        w.add_tensor(
            format!("t{i}"),
            GgmlType::F16,
            &[1 << 14, 1 << 10],
            vec![0u8; 2 << 24],
        )
        .unwrap();
    }
    std::fs::write(&path, w.to_bytes()).unwrap();
    path
}

/// Interrupted conversions leave nothing under any name: SIGINT and SIGTERM
/// exit with 130 and 143, SIGKILL leaves no named file.
#[test]
fn interrupted_conversions_leave_nothing() {
    let (dir, _) = folder("signals");
    std::fs::remove_file(dir.join("in.gguf")).unwrap();
    let input = big_input(&dir);
    for (sig, code) in [
        (libc::SIGINT, Some(130)),
        (libc::SIGTERM, Some(143)),
        (libc::SIGKILL, None),
    ] {
        let target = dir.join("out.safetensors");
        let child = bin()
            .args([
                "convert",
                input.to_str().unwrap(),
                "-o",
                target.to_str().unwrap(),
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        // SAFETY: a child of this process, still running or a zombie.
        unsafe { libc::kill(child.id() as i32, sig) };
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), code, "signal {sig}: {:?}", out.status);
        assert_eq!(names(&dir), ["big.gguf"], "signal {sig}");
    }
}

fn run_ok_or_refused(args: &[&str]) -> Output {
    let start = Instant::now();
    let out = bin().args(args).stdin(Stdio::null()).output().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{args:?} took too long"
    );
    assert!(
        out.status.code().is_some(),
        "{args:?} died by a signal: {:?}",
        out.status
    );
    out
}

/// A FIFO, a device, a directory as input: refused at once, without
/// blocking or reading without bound.
#[test]
fn inputs_that_are_not_regular_files_are_refused() {
    let (dir, _) = folder("inputs");
    let fifo = dir.join("fifo.gguf");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for (path, no_mmap) in [
        (fifo.to_str().unwrap(), false),
        (fifo.to_str().unwrap(), true),
        ("/dev/zero", true),
        ("/dev/urandom", true),
        ("/dev/zero", false),
        (dir.to_str().unwrap(), false),
    ] {
        let mut args = vec!["inspect", path];
        if no_mmap {
            args.push("--no-mmap");
        }
        refused(&run_ok_or_refused(&args), "not a regular file");
    }
}

/// A file whose names and keys carry terminal escape sequences, one name of
/// 70,000 bytes and 20,000 other tensors.
fn nasty_names(dir: &Path) -> PathBuf {
    let path = dir.join("names.gguf");
    let mut w = GgufWriter::new();
    w.add_kv(
        "evil.\u{1b}[2J.key",
        gguf_dequant::gguf::Value::String("\u{1b}]0;title\u{7}".into()),
    )
    .unwrap();
    w.add_tensor(
        "\u{1b}[31mred\u{1b}[0m\u{202e}",
        GgmlType::F32,
        &[1],
        vec![0u8; 4],
    )
    .unwrap();
    w.add_tensor("n".repeat(70_000), GgmlType::F32, &[1], vec![0u8; 4])
        .unwrap();
    for i in 0..20_000 {
        w.add_tensor(format!("t{i}"), GgmlType::F32, &[1], vec![0u8; 4])
            .unwrap();
    }
    std::fs::write(&path, w.to_bytes()).unwrap();
    path
}

#[test]
fn names_cannot_drive_the_terminal_or_blow_up_the_table() {
    let (dir, _) = folder("names");
    let path = nasty_names(&dir);
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    let out = run_ok_or_refused(&["inspect", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.stdout.contains(&0x1b),
        "a raw escape reached the terminal"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{202e}'));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\\u{1b}[31mred"), "escaped name missing");
    assert!(text.contains("…"), "the long name is cut");
    // linear in the input: each row at most the capped name plus the columns
    assert!(
        out.stdout.len() < 2 * size + 100 * 20_003,
        "{} bytes of output",
        out.stdout.len()
    );
    // --json keeps the names whole (JSON escapes control characters itself)
    let out = run_ok_or_refused(&["inspect", path.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    assert!(!out.stdout.contains(&0x1b));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["tensors"][1]["name"].as_str().unwrap().len(), 70_000);
    // and error messages escape them too
    let out = run_ok_or_refused(&[
        "convert",
        path.to_str().unwrap(),
        "-o",
        dir.join("x.st").to_str().unwrap(),
        "--tensor",
        "\u{1b}[5mno such",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !out.stderr.contains(&0x1b),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Standard output that cannot be written is an error with a message, not a
/// panic; a closed pipe ends the process quietly.
#[test]
fn unwritable_standard_output() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = bin()
        .args(["inspect", &fixture("real-weights.gguf").to_string_lossy()])
        .stdout(full)
        .output()
        .unwrap();
    refused(&out, "writing to standard output");

    let mut child = bin()
        .args([
            "inspect",
            &fixture("real-weights.gguf").to_string_lossy(),
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once
    let out = child.wait_with_output().unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn safetensors_header(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert!(
        n <= 100_000_000,
        "header of {n} bytes: past what readers take"
    );
    serde_json::from_slice(&bytes[8..8 + n]).unwrap()
}

/// GGUF metadata in safetensors: no silent loss or overwrite, no value that
/// makes the file unreadable; names safetensors reserves refused with the
/// reason; empty tensors written.
#[test]
fn metadata_and_names_are_kept_faithfully() {
    use gguf_dequant::gguf::Value;
    let (dir, _) = folder("metadata");
    let mut w = GgufWriter::new();
    w.add_kv("format", Value::String("gguf-thing".into()))
        .unwrap();
    w.add_kv("x.nan", Value::F32(f32::NAN)).unwrap();
    w.add_kv("x.inf", Value::F64(f64::NEG_INFINITY)).unwrap();
    w.add_kv("x.third", Value::F32(1.0 / 3.0)).unwrap();
    w.add_kv("x.flag", Value::Bool(true)).unwrap();
    w.add_kv("x.huge", Value::String("h".repeat(101_000_000)))
        .unwrap();
    w.add_kv("x.after", Value::U32(7)).unwrap();
    w.add_tensor("empty", GgmlType::F32, &[0, 4, 1 << 40], Vec::<u8>::new())
        .unwrap();
    w.add_tensor("w", GgmlType::Q4_0, &[64], vec![0u8; 36])
        .unwrap();
    let input = dir.join("meta.gguf");
    std::fs::write(&input, w.to_bytes()).unwrap();
    let output = dir.join("out.safetensors");
    let convert_on = |device: &str| {
        bin()
            .args(["convert", input.to_str().unwrap(), "-o"])
            .args([output.to_str().unwrap(), "--device", device])
            .output()
            .unwrap()
    };
    if cfg!(feature = "cuda") {
        // the empty tensor through a device's pipeline too
        let out = convert_on("emulated");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = convert_on("cpu");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for key in ["x.huge", "x.flag", "format: kept as 'gguf.format'"] {
        assert!(err.contains(key), "'{key}' not reported: {err}");
    }
    let h = safetensors_header(&output);
    let m = &h["__metadata__"];
    assert_eq!(m["format"], "pt");
    assert_eq!(m["gguf.format"], "gguf-thing");
    assert_eq!(m["x.nan"], "NaN");
    assert_eq!(m["x.inf"], "-inf");
    assert_eq!(
        m["x.third"].as_str().unwrap().parse::<f32>().unwrap(),
        1.0 / 3.0
    );
    assert_eq!(m["x.after"], "7");
    assert!(m.get("x.huge").is_none() && m.get("x.flag").is_none());
    assert_eq!(h["empty"]["shape"], serde_json::json!([1u64 << 40, 4, 0]));
    assert_eq!(h["empty"]["data_offsets"], serde_json::json!([0, 0]));

    let mut w = GgufWriter::new();
    w.add_tensor("__metadata__", GgmlType::F32, &[1], vec![0u8; 4])
        .unwrap();
    std::fs::write(&input, w.to_bytes()).unwrap();
    let out = bin()
        .args([
            "convert",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    refused(&out, "reserves for its metadata");
}

/// A sparse q1_0 file of 16 GB decodes to about 455 GB of f32: refused up front
/// for lack of disk, at once, in little memory. `bench` refuses sizes memory
/// cannot hold before allocating.
#[test]
fn huge_outputs_are_refused_up_front() {
    let (dir, _) = folder("huge");
    let path = dir.join("sparse.gguf");
    let n_blocks: u64 = 16 << 30 >> 4; // 16 GiB of 18-byte blocks, roughly
                                       // a small file of the same layout, its element count then patched
    let small = 4097u64;
    let mut w = GgufWriter::new();
    w.add_tensor(
        "big",
        GgmlType::Q1_0,
        &[small * 128],
        vec![0u8; small as usize * 18],
    )
    .unwrap();
    let mut bytes = w.to_bytes();
    let data_offset = gguf_dequant::gguf::GgufFile::from_bytes(bytes.clone())
        .unwrap()
        .data_offset() as usize;
    let at = bytes[..data_offset]
        .windows(8)
        .position(|x| x == (small * 128).to_le_bytes())
        .unwrap();
    bytes[at..at + 8].copy_from_slice(&(n_blocks * 128).to_le_bytes());
    bytes.truncate(data_offset);
    std::fs::write(&path, &bytes).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(data_offset as u64 + n_blocks * 18).unwrap(); // sparse
    let start = Instant::now();
    let out = bin()
        .args([
            "convert",
            path.to_str().unwrap(),
            "-o",
            dir.join("o.st").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    refused(&out, "free on its filesystem");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(names(&dir), ["in.gguf", "sparse.gguf"]);

    let out = bin()
        .args(["bench", "--device", "cpu", "--elems", "4611686018427387904"])
        .output()
        .unwrap();
    refused(&out, "memory");
}

/// A file truncated while it is read, in the middle of a tensor: an error
/// naming the tensor and the offset, never SIGBUS, on the CPU path and the
/// device pipeline, and no output left behind.
#[test]
fn a_file_that_shrinks_while_read_is_an_error_not_a_signal() {
    let (dir, _) = folder("shrink");
    let input = big_input(&dir);
    let len = std::fs::metadata(&input).unwrap().len();
    let mut runs = vec![vec!["convert", "-o", "out.safetensors"]];
    if cfg!(feature = "cuda") {
        runs.push(vec![
            "convert",
            "-o",
            "out.safetensors",
            "--device",
            "emulated",
        ]);
        runs.push(vec!["verify", "--device", "emulated"]);
    }
    for args in runs {
        let copy = dir.join("shrinking.gguf");
        std::fs::copy(&input, &copy).unwrap();
        let mut cmd = bin();
        cmd.arg(args[0])
            .arg(&copy)
            .args(&args[1..])
            .current_dir(&*dir);
        let child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        // cut in the middle of the data, while it is being read
        std::fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let out = child.wait_with_output().unwrap();
        // convert says it on stderr, verify in its per-tensor report
        let err = String::from_utf8_lossy(&out.stderr) + String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {:?} {err}",
            out.status
        );
        assert!(
            err.contains("shorter than when it was opened") && err.contains("tensor 't"),
            "{args:?}: {err}"
        );
        assert!(!dir.join("out.safetensors").exists());
    }
}
