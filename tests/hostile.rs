//! The command line against what a hostile or careless user gives it.
//!
//! The output of every command that writes one (`convert`, `synth`) named as
//! the input itself (directly, through a hard link, through a symbolic link),
//! a directory, a device, a FIFO, a dangling link, a link loop, one of the
//! process's descriptors (`/dev/stdout`, `/dev/fd/N`, `>(...)`), a name at the
//! filesystem's length limit; a disk that fills up and a run interrupted by
//! SIGINT, SIGTERM or SIGKILL (also while it waits for a FIFO's reader): the
//! input is never harmed, nothing is written where it should not be, and no
//! partial output is ever left under a name.
//! Inputs that are not regular files; names built to drive the terminal or
//! blow up the table; standard output that cannot be written; sizes from a
//! file or a flag that memory cannot hold.

#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
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
    bin().args(convert_args(input, output)).output().unwrap()
}

fn convert_args(input: &Path, output: &str) -> Vec<String> {
    ["convert", input.to_str().unwrap(), "-o", output]
        .into_iter()
        .chain(["--tensor", "minilm.q4_0"])
        .map(String::from)
        .collect()
}

/// The arguments of every command that writes a file, writing `output`:
/// `convert` (one tensor of `input`) and `synth` (its smallest preset).
fn writers(input: &Path, output: &str) -> [Vec<String>; 2] {
    [
        convert_args(input, output),
        ["synth", "--like", "all-types", output]
            .map(String::from)
            .to_vec(),
    ]
}

/// What each writer writes, as a regular file.
fn reference_outputs(dir: &Path, input: &Path) -> Vec<Vec<u8>> {
    let path = dir.join("reference");
    writers(input, path.to_str().unwrap())
        .iter()
        .map(|args| {
            let out = bin().args(args).output().unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
            let bytes = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            bytes
        })
        .collect()
}

/// The child's writes past `bytes` of any file fail (EFBIG, with SIGXFSZ
/// ignored): a disk that fills up part way, without root or a mount.
fn file_size_limit(cmd: &mut Command, bytes: u64) -> &mut Command {
    // SAFETY: signal and setrlimit are async-signal-safe, as pre_exec asks.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
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
    std::os::unix::fs::symlink(&real, dir.join("link.safetensors")).unwrap();
    for args in writers(&input, &dir.join("link.safetensors").to_string_lossy()) {
        std::fs::write(&real, b"old").unwrap();
        let out = bin().args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
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
}

/// A dangling link is written through as any other: its target is created
/// (a relative target from the link's own folder), the link stays. A loop of
/// links is refused, and nothing is written.
#[test]
fn a_dangling_link_is_written_through_and_a_loop_refused() {
    let (dir, input) = folder("dangling");
    let want = reference_outputs(&dir, &input);
    std::fs::create_dir(dir.join("a")).unwrap();
    std::fs::create_dir(dir.join("b")).unwrap();
    let link = |to: &str, name: &str| std::os::unix::fs::symlink(to, dir.join(name)).unwrap();
    link("made", "dangling");
    link("../b/made", "a/dangling");
    link("a/dangling", "chain");
    link("loop2", "loop1");
    link("loop1", "loop2");
    for (i, (name, made)) in [("dangling", "made"), ("chain", "b/made")]
        .into_iter()
        .enumerate()
    {
        for (w, args) in writers(&input, &dir.join(name).to_string_lossy())
            .iter()
            .enumerate()
        {
            let out = bin().args(args).output().unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
            assert!(std::fs::symlink_metadata(dir.join(name))
                .unwrap()
                .file_type()
                .is_symlink());
            assert!(
                std::fs::read(dir.join(made)).unwrap() == want[w],
                "{i} {args:?}"
            );
            std::fs::remove_file(dir.join(made)).unwrap();
        }
    }
    for args in writers(&input, &dir.join("loop1").to_string_lossy()) {
        refused(&bin().args(&args).output().unwrap(), "symbolic links");
    }
    assert_eq!(
        names(&dir),
        ["a", "b", "chain", "dangling", "in.gguf", "loop1", "loop2"]
    );
    assert!(names(&dir.join("b")).is_empty());
}

/// `-o` naming one of the process's own descriptors (`/dev/stdout`,
/// `/dev/fd/N`, `/proc/self/fd/N`, bash's `>(...)`) writes through that
/// descriptor whatever it is: a pipe, a file the shell opened with `>` or
/// `>>` (its offset and flags kept), `/dev/full` (an error); never the input,
/// never a terminal.
#[test]
fn outputs_named_by_descriptors_are_written_through_them() {
    let (dir, input) = folder("fds");
    let want = reference_outputs(&dir, &input);
    for (w, _) in writers(&input, "").iter().enumerate() {
        let args = |output: &str| writers(&input, output)[w].clone();
        for name in [
            "/dev/stdout",
            "/dev/fd/1",
            "/proc/self/fd/1",
            "/proc/thread-self/fd/1",
        ] {
            let out = bin().args(args(name)).output().unwrap();
            assert!(out.status.success(), "{name}: {out:?}");
            assert!(out.stdout == want[w], "{name}: not the output");
        }
        // a file the shell opened: `>>` appends, `>` writes from the start,
        // and the file is the one opened, not replaced
        let file = dir.join("shell-opened");
        for append in [true, false] {
            std::fs::write(&file, b"before\n").unwrap();
            let inode = std::fs::metadata(&file).unwrap().ino();
            let stdout = std::fs::OpenOptions::new()
                .write(true)
                .append(append)
                .truncate(!append)
                .open(&file)
                .unwrap();
            let out = bin()
                .args(args("/dev/stdout"))
                .stdout(stdout)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let mut expected = if append {
                b"before\n".to_vec()
            } else {
                Vec::new()
            };
            expected.extend_from_slice(&want[w]);
            assert!(std::fs::read(&file).unwrap() == expected, "append {append}");
            assert_eq!(std::fs::metadata(&file).unwrap().ino(), inode);
        }
        std::fs::remove_file(&file).unwrap();
        // bash's process substitution: a pipe on /dev/fd/63
        let out = Command::new("bash")
            .args([
                "-c",
                r#"run() { p=$1; shift; "$0" "${@/#OUT/$p}"; }; run >(cat) "$@""#,
            ])
            .arg(env!("CARGO_BIN_EXE_gguf-dequant"))
            .args(args("OUT"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            out.stdout == want[w],
            "process substitution: not the output"
        );
        // a reader that goes away: ended quietly by SIGPIPE, as `| head`
        let mut child = bin()
            .args(args("/dev/stdout"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{out:?}");
        assert!(out.stderr.is_empty(), "{out:?}");
        // errors: a full device, a descriptor not open, the input, a terminal
        let full = std::fs::File::options()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = bin()
            .args(args("/dev/stdout"))
            .stdout(full)
            .output()
            .unwrap();
        refused(&out, "No space left");
        refused(
            &bin().args(args("/dev/fd/97")).output().unwrap(),
            "Bad file descriptor",
        );
        if w == 0 {
            // convert's input (synth has none)
            let original = std::fs::read(&input).unwrap();
            let same = std::fs::File::options().append(true).open(&input).unwrap();
            let out = bin()
                .args(args("/dev/stdout"))
                .stdout(same)
                .output()
                .unwrap();
            refused(&out, "is the input file");
            assert!(std::fs::read(&input).unwrap() == original);
        }
        let (_master, slave) = pty();
        let terminal = std::fs::File::options().write(true).open(&slave).unwrap();
        let out = bin()
            .args(args("/dev/stdout"))
            .stdout(terminal)
            .output()
            .unwrap();
        refused(&out, "is a terminal");
        refused(
            &bin().args(args(slave.to_str().unwrap())).output().unwrap(),
            "is a terminal",
        );
    }
    assert_eq!(names(&dir), ["in.gguf"]);
}

/// A disk that fills up part way: every writer fails with the reason and
/// leaves the name as it was, and no other file.
#[test]
fn a_full_disk_leaves_the_old_output() {
    let (dir, input) = folder("full");
    let target = dir.join("out");
    for args in writers(&input, target.to_str().unwrap()) {
        std::fs::write(&target, b"old").unwrap();
        let out = file_size_limit(bin().args(&args), 1 << 16)
            .output()
            .unwrap();
        refused(&out, "File too large");
        assert!(
            std::fs::read(&target).unwrap() == b"old",
            "{args:?}: old output lost"
        );
        assert_eq!(names(&dir), ["in.gguf", "out"], "{args:?}");
    }
}

#[test]
fn devices_and_fifos_are_written_not_replaced() {
    let (dir, input) = folder("special");
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for (w, args) in writers(&input, "/dev/null").iter().enumerate() {
        let out = bin().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());

        let reader_path = fifo.clone();
        let reader = std::thread::spawn(move || std::fs::read(reader_path).unwrap().len());
        let args = &writers(&input, fifo.to_str().unwrap())[w];
        let out = bin().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(reader.join().unwrap() > 98304 * 4);
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(names(&dir), ["fifo", "in.gguf"]);
    }
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

/// Interrupted writers leave the name as it was and nothing else: SIGINT and
/// SIGTERM exit with 130 and 143, SIGKILL leaves no named file.
#[test]
fn interrupted_writers_leave_nothing() {
    let (dir, _) = folder("signals");
    std::fs::remove_file(dir.join("in.gguf")).unwrap();
    let input = big_input(&dir);
    let target = dir.join("out");
    let target = target.to_str().unwrap();
    let runs = [
        vec!["convert", input.to_str().unwrap(), "-o", target],
        // tens of seconds of random blocks (a 4.9 GB file): still running when
        // signalled on any machine (the 392 MB qwen preset was done within
        // the 700 ms on a quiet one)
        vec!["synth", "--like", "llama-3-8b-q4_k_m", target],
    ];
    for args in runs {
        for (sig, code) in [
            (libc::SIGINT, Some(130)),
            (libc::SIGTERM, Some(143)),
            (libc::SIGKILL, None),
        ] {
            std::fs::write(target, b"old").unwrap();
            let child = bin().args(&args).stderr(Stdio::piped()).spawn().unwrap();
            std::thread::sleep(Duration::from_millis(700));
            // SAFETY: a child of this process, still running or a zombie.
            unsafe { libc::kill(child.id() as i32, sig) };
            let out = child.wait_with_output().unwrap();
            assert_eq!(out.status.code(), code, "{args:?} {sig}: {:?}", out.status);
            assert!(
                std::fs::read(target).unwrap() == b"old",
                "{args:?} {sig}: old output lost"
            );
            assert_eq!(names(&dir), ["big.gguf", "out"], "{args:?} {sig}");
        }
    }
}

/// Whether process `pid` is asleep opening a FIFO that has no reader: its
/// kernel wait channel says so or, where the kernel hides that, it has stayed
/// in an `open` call for 300 ms (no other open of a writer sleeps that long).
fn blocked_opening_a_fifo(pid: u32) -> bool {
    let proc =
        |what: &str| std::fs::read_to_string(format!("/proc/{pid}/{what}")).unwrap_or_default();
    if proc("wchan").trim() == "wait_for_partner" {
        return true;
    }
    let opening = || {
        let call = proc("syscall");
        let nr = call
            .split(' ')
            .next()
            .and_then(|n| n.parse::<libc::c_long>().ok());
        #[cfg(target_arch = "x86_64")]
        let open = nr == Some(libc::SYS_open);
        #[cfg(not(target_arch = "x86_64"))]
        let open = false;
        open || nr == Some(libc::SYS_openat)
    };
    (0..6).all(|_| {
        let now = opening();
        std::thread::sleep(Duration::from_millis(50));
        now
    })
}

/// A writer whose output is a FIFO no one reads waits in `open` for a reader
/// (as a shell's `>` does), and SIGINT or SIGTERM still end it at once, with
/// 130 or 143, leaving the FIFO as it was and nothing else.
#[test]
fn a_writer_waiting_for_a_fifo_reader_can_be_interrupted() {
    let (dir, input) = folder("fifo-signal");
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for args in writers(&input, fifo.to_str().unwrap()) {
        for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
            let mut child = bin()
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let start = Instant::now();
            while !blocked_opening_a_fifo(child.id()) {
                if start.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some()
                {
                    let _ = child.kill();
                    panic!(
                        "{args:?}: never seen waiting for a reader: {:?}",
                        child.wait_with_output()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: a child of this process, not yet waited for.
            unsafe { libc::kill(child.id() as i32, sig) };
            let signalled = Instant::now();
            while child.try_wait().unwrap().is_none() {
                if signalled.elapsed() > Duration::from_secs(5) {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{args:?} {sig}: still running 5 s after the signal");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(code),
                "{args:?} {sig}: {:?} {err}",
                out.status
            );
            assert!(!err.contains("panicked"), "{err}");
            assert!(std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo());
            assert_eq!(names(&dir), ["fifo", "in.gguf"], "{args:?} {sig}");
        }
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
        "\u{1b}[31mred\u{1b}[0m\u{202e}\u{9b}2J\u{7f}",
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
    // and escapes the rest (DEL, C1 controls, text reordering) as \uXXXX
    let out = run_ok_or_refused(&["inspect", path.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains(|c: char| c.is_control() && c != '\n'),
        "raw control"
    );
    assert!(!text.contains('\u{202e}'), "raw reordering character");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["tensors"][0]["name"],
        "\u{1b}[31mred\u{1b}[0m\u{202e}\u{9b}2J\u{7f}"
    );
    assert_eq!(doc["metadata"]["evil.\u{1b}[2J.key"], "\u{1b}]0;title\u{7}");
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
    // nor the output's name, in every writer's report of what it wrote
    let output = dir.join("\u{1b}[2J\u{202e}out");
    for args in writers(&dir.join("in.gguf"), output.to_str().unwrap()) {
        let out = run_ok_or_refused(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(err.contains("\\u{1b}[2J\\u{202e}out"), "{args:?}: {err}");
        assert!(
            !out.stderr.contains(&0x1b) && !err.contains('\u{202e}'),
            "{err}"
        );
    }
    // nor the arguments the command-line parser quotes back
    let evil = "\u{1b}[2J\u{202e}\r";
    for args in [
        vec!["inspect", "a", &format!("--{evil}x")],
        vec!["bench", "--level", evil],
        vec![evil],
    ] {
        let out = run_ok_or_refused(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("\\u{202e}\\r"), "{args:?}: {err}");
        assert!(!out.stderr.contains(&0x1b), "{args:?}: {err}");
        assert!(!err.contains(['\u{202e}', '\r']), "{args:?}: {err}");
    }
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

/// The child's address space limited to `bytes`: an allocation past it fails,
/// as on a machine with that much memory, whatever this one has.
fn memory_limit(cmd: &mut Command, bytes: u64) -> &mut Command {
    // SAFETY: setrlimit is async-signal-safe, as pre_exec asks.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Buffers sized from a file or a flag that memory cannot hold: an error
/// naming what, exit 1, never an abort or a panic. `verify` of a q1_0 tensor
/// of 2^30 elements (151 MB of blocks, 4 GiB of f32) in 3 GiB of address
/// space, and `convert` of half that on the emulated device; `load --world`
/// and `bench --threads` past anything this machine has, refused before
/// anything is allocated for them.
#[test]
fn sizes_from_files_and_flags_are_checked() {
    let (dir, _) = folder("sizes");
    let path = dir.join("wide.gguf");
    let n: u64 = 1 << 30;
    let mut w = GgufWriter::new();
    let blocks = GgmlType::Q1_0.bytes_for(n).unwrap();
    w.add_tensor("wide", GgmlType::Q1_0, &[n], vec![0u8; blocks as usize])
        .unwrap();
    std::fs::write(&path, w.to_bytes()).unwrap();
    if cfg!(feature = "cuda") {
        let out = memory_limit(
            bin().args(["verify", path.to_str().unwrap(), "--device", "emulated"]),
            3 << 30,
        )
        .output()
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(text.contains("elements do not fit in memory"), "{text}");
        // the emulated device's memory is allocated fallibly: 1 GiB of bf16
        // output twice on the host (verify's two copies) fits in 2.5 GiB, a
        // third time on the device does not
        let half = dir.join("half.gguf");
        let mut w = GgufWriter::new();
        let blocks = GgmlType::Q1_0.bytes_for(n / 2).unwrap();
        w.add_tensor("half", GgmlType::Q1_0, &[n / 2], vec![0u8; blocks as usize])
            .unwrap();
        std::fs::write(&half, w.to_bytes()).unwrap();
        let out = memory_limit(
            bin()
                .args(["verify", half.to_str().unwrap(), "--device", "emulated"])
                .args(["--dtype", "bf16"]),
            5 << 29,
        )
        .output()
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(text.contains("CUDA_ERROR_OUT_OF_MEMORY"), "{text}");
        assert_eq!(text.matches("tensor 'half'").count(), 1, "{text}");
        // convert decodes on the device in pieces: the same 1 GiB of output
        // is written in 1.5 GiB, where the whole tensor on the host and
        // again on the device would not fit
        let output = dir.join("half.st");
        let out = memory_limit(
            bin().args(["convert", half.to_str().unwrap(), "-o"]).args([
                output.to_str().unwrap(),
                "--device",
                "emulated",
                "--dtype",
                "bf16",
            ]),
            3 << 29,
        )
        .output()
        .unwrap();
        assert!(out.status.success(), "{out:?}");
        let written = std::fs::metadata(&output).unwrap().len();
        assert!(written > n, "{written} bytes written");
        std::fs::remove_file(&output).unwrap();
        std::fs::remove_file(&half).unwrap();
    }
    let fixture = fixture("real-weights.gguf");
    for world in ["18446744073709551615", "1099511627776", "100000000"] {
        let out = memory_limit(
            bin().args(["load", fixture.to_str().unwrap(), "--world", world]),
            3 << 30,
        )
        .output()
        .unwrap();
        let why = if cfg!(feature = "cuda") {
            "--world"
        } else {
            "cuda"
        };
        refused(&out, why);
    }
    for threads in ["0", "1000000000000"] {
        // (a pool of that many threads would not end: `timeout` ends it)
        let out = Command::new("timeout")
            .args([
                "60",
                env!("CARGO_BIN_EXE_gguf-dequant"),
                "bench",
                "--device",
                "cpu",
            ])
            .args(["--elems", "256", "--threads", threads])
            .output()
            .unwrap();
        refused(&out, "--threads");
    }
}
