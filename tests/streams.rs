//! Every command whatever its standard streams are: standard error full
//! (`2>/dev/full`), a pipe nobody reads, a terminal that is gone, or closed;
//! standard output full or closed. Diagnostics that cannot be written are
//! lost, never the work: each command exits as it does with ordinary streams
//! (0 or 1), and a standard output that cannot take what the command prints
//! is an error, exit 1; never a panic (101) or a signal.

#![cfg(target_os = "linux")]

mod common;

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gguf-dequant"))
}

/// Every command, quick: (arguments, the file it writes if any).
fn commands(dir: &Path) -> Vec<(Vec<String>, Option<std::path::PathBuf>)> {
    let real = fixture("real-weights.gguf").to_string_lossy().into_owned();
    let out = dir.join("out");
    let o = out.to_string_lossy().into_owned();
    let mut v: Vec<(Vec<&str>, bool)> = vec![
        (vec!["inspect", &real], false),
        (vec!["inspect", &real, "--json"], false),
        (vec!["inspect", "/no/such/file"], false),
        (
            vec!["convert", &real, "-o", &o, "--tensor", "minilm.q4_0"],
            true,
        ),
        (vec!["synth", "--like", "all-types", &o], true),
        (
            vec![
                "bench", "--device", "cpu", "--elems", "256", "--runs", "1", "--type", "q4_0",
            ],
            false,
        ),
        (
            vec![
                "bench", "--device", "cpu", "--elems", "256", "--runs", "1", "--type", "q4_0",
                "--json",
            ],
            false,
        ),
        (vec!["devices"], false),
        (vec!["devices", "--json"], false),
        (vec!["load", &real], false),
        (vec![], false), // the default job (GDQ_DEFAULT_JOB_ROWS below)
        (vec!["--help"], false),
        (vec!["--version"], false),
        (vec!["--no-such-flag"], false),
    ];
    if cfg!(feature = "cuda") {
        v.push((vec!["verify", &real, "--device", "emulated"], false));
    }
    v.into_iter()
        .map(|(args, writes)| {
            (
                args.into_iter().map(String::from).collect(),
                writes.then(|| out.clone()),
            )
        })
        .collect()
}

/// How standard error or output is set up for one run.
#[derive(Clone, Copy, Debug)]
enum Stream {
    Full,
    /// A pipe whose reader has gone.
    Widowed,
    /// A terminal whose other side has gone (writes fail with EIO).
    DeadTerminal,
    Closed,
}

/// `args` run with ordinary streams (captured): what every other set-up is
/// compared with.
fn run_normally(args: &[String]) -> Output {
    bin()
        .args(args)
        .env("GDQ_DEFAULT_JOB_ROWS", "1")
        .output()
        .unwrap()
}

fn run(args: &[String], fd: i32, how: Stream) -> Output {
    let mut cmd = bin();
    cmd.args(args)
        .env("GDQ_DEFAULT_JOB_ROWS", "1")
        .stdin(Stdio::null());
    let file = match how {
        Stream::Full => Some(File::options().write(true).open("/dev/full").unwrap()),
        Stream::Widowed => {
            let mut fds = [0; 2];
            // SAFETY: a two-element array for pipe's two descriptors.
            assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
            // SAFETY: fresh descriptors this test owns.
            unsafe {
                libc::close(fds[0]);
                Some(<File as std::os::fd::FromRawFd>::from_raw_fd(fds[1]))
            }
        }
        Stream::DeadTerminal => {
            let (master, slave) = pty();
            let slave = File::options()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(slave)
                .unwrap();
            drop(master);
            Some(slave)
        }
        Stream::Closed => {
            // SAFETY: close is async-signal-safe, as pre_exec asks.
            unsafe {
                cmd.pre_exec(move || {
                    libc::close(fd);
                    Ok(())
                });
            }
            None
        }
    };
    if let Some(f) = file {
        if fd == 1 {
            cmd.stdout(f);
        } else {
            cmd.stderr(f);
        }
    }
    // the other stream is read, to be shown on failure
    if fd == 1 && !matches!(how, Stream::Closed) {
        cmd.stderr(Stdio::piped());
    }
    cmd.output().unwrap()
}

#[test]
fn unwritable_standard_error_loses_diagnostics_not_the_work() {
    let dir = TempDir::new("streams-stderr");
    for (args, writes) in commands(&dir) {
        let normal = run_normally(&args);
        let want = normal.status.code();
        assert!(matches!(want, Some(0..=2)), "{args:?}: {normal:?}");
        let written = writes.as_ref().map(|p| std::fs::read(p).unwrap());
        for how in [
            Stream::Full,
            Stream::Widowed,
            Stream::DeadTerminal,
            Stream::Closed,
        ] {
            if let Some(p) = &writes {
                std::fs::remove_file(p).unwrap();
            }
            let out = run(&args, 2, how);
            assert_eq!(out.status.code(), want, "{args:?}, stderr {how:?}: {out:?}");
            assert_eq!(
                out.stdout.is_empty(),
                normal.stdout.is_empty(),
                "{args:?}, stderr {how:?}"
            );
            if let (Some(p), Some(w)) = (&writes, &written) {
                assert!(std::fs::read(p).unwrap() == *w, "{args:?}, stderr {how:?}");
            }
        }
    }
}

#[test]
fn unwritable_standard_output_is_an_error_and_closed_is_quiet() {
    let dir = TempDir::new("streams-stdout");
    for (args, _) in commands(&dir) {
        let normal = run_normally(&args);
        let want = normal.status.code();
        // output that cannot be written is an error; no output, no error
        let full = run(&args, 1, Stream::Full);
        let err = String::from_utf8_lossy(&full.stderr);
        if normal.stdout.is_empty() {
            assert_eq!(full.status.code(), want, "{args:?}: {err}");
        } else {
            assert_eq!(full.status.code(), Some(1), "{args:?}: {err}");
            assert!(
                err.contains("writing to standard output"),
                "{args:?}: {err}"
            );
        }
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        // closed (the runtime puts /dev/null there): as with ordinary streams
        let closed = run(&args, 1, Stream::Closed);
        assert_eq!(closed.status.code(), want, "{args:?}: {closed:?}");
        let closed = run(&args, 0, Stream::Closed);
        assert_eq!(closed.status.code(), want, "{args:?}: {closed:?}");
    }
}
