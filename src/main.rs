//! The gguf-dequant command line. With no arguments it runs the default job: a
//! GGUF of random valid blocks of every type, decoded and checked, with a table.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Piped into `head`, stop quietly as other command-line tools do, instead of
    // panicking on the failed write.
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse();
    let code = match cli::run(args).and_then(|code| {
        use std::io::Write;
        std::io::stdout()
            .flush()
            .map_err(|e| gguf_dequant::Error::io("writing to standard output", e))?;
        Ok(code)
    }) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    };
    if std::env::var_os("GDQ_REPORT_PEAK_RSS").is_some() {
        report_peak_rss();
    }
    code
}

/// Prints the process's peak resident memory (Linux), for the memory-bound tests.
fn report_peak_rss() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for key in ["VmHWM:", "RssAnon:", "RssFile:"] {
        if let Some(line) = status.lines().find(|l| l.starts_with(key)) {
            eprintln!("{}", line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
}
