//! The gguf-dequant command line. With no arguments it runs the default job: a
//! GGUF of random valid blocks of every type, decoded and checked, with a table.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // SIGPIPE stays ignored (Rust's default), so that a closed pipe on
    // standard error loses a diagnostic instead of killing the command; a
    // closed pipe on standard output or the output ends it below.
    let code = match cli::Cli::try_parse() {
        Ok(args) => cli::run(args),
        Err(e) => cli::usage(e),
    }
    .and_then(|code| {
        use std::io::Write;
        std::io::stdout()
            .flush()
            .map_err(|e| gguf_dequant::Error::io("writing to standard output", e))?;
        Ok(code)
    });
    let code = match code {
        Ok(code) => code,
        Err(gguf_dequant::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            end_by_sigpipe()
        }
        Err(e) => {
            cli::diagnostic(format_args!("error: {e}\n"));
            ExitCode::FAILURE
        }
    };
    if std::env::var_os("GDQ_REPORT_PEAK_RSS").is_some() {
        report_peak_rss();
    }
    code
}

/// Piped into `head`, stop quietly as other command-line tools do: ended by
/// SIGPIPE, as a write would have been without it ignored.
fn end_by_sigpipe() -> ExitCode {
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition and raising it are
    // plain libc calls; the process ends at the raise.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    ExitCode::FAILURE
}

/// Prints the process's peak resident memory (Linux), for the memory-bound tests.
fn report_peak_rss() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for key in ["VmHWM:", "RssAnon:", "RssFile:"] {
        if let Some(line) = status.lines().find(|l| l.starts_with(key)) {
            let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
            cli::diagnostic(format_args!("{line}\n"));
        }
    }
}
