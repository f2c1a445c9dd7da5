//! The gguf-dequant command line. With no arguments it runs the default job: a
//! GGUF of random valid blocks of every type, decoded and checked, with a table.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
