//! The gguf-dequant command line. With no arguments it runs the default job: a
//! GGUF of random valid blocks of every type, decoded and checked, with a table.

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
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
