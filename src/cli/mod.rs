//! Subcommands of the gguf-dequant binary.

/// `println!` that returns an error (`?`) instead of panicking when standard
/// output cannot be written (a full disk, `/dev/full`). A closed pipe ends the
/// process quietly, as other command-line tools (SIGPIPE, see main.rs).
macro_rules! outln {
    () => {
        $crate::cli::write_line(format_args!(""))?
    };
    ($($arg:tt)*) => {
        $crate::cli::write_line(format_args!($($arg)*))?
    };
}

/// `eprintln!` for diagnostics (notes, the final error): a standard error that
/// cannot be written (`2>/dev/full`, a closed pipe) loses them instead of
/// panicking, so that the work done and the exit code stand.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::diagnostic(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod bench;
mod convert;
mod default_job;
#[cfg(feature = "cuda")]
mod devices;
mod inspect;
#[cfg(feature = "cuda")]
mod load;
#[cfg(feature = "cuda")]
mod model;
mod synth;
mod verify;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gguf_dequant::device::DeviceChoice;
use gguf_dequant::gguf::{GgufFile, OpenOptions};
use gguf_dequant::{OutType, Result};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser, Debug)]
#[command(
    name = "gguf-dequant",
    version,
    about = "Decode the quantized tensors of GGUF files into f32, f16 or bf16, on the GPU or the CPU"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print a file's version, alignment, metadata and tensor table.
    Inspect {
        file: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Read the file instead of mapping it.
        #[arg(long)]
        no_mmap: bool,
    },
    /// Dequantize every tensor (or those named) into a safetensors file.
    Convert {
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// f32, f16 or bf16.
        #[arg(long, default_value = "f32", value_parser = parse_dtype)]
        dtype: OutType,
        /// cpu, cuda, emulated, ptx (the kernels' compute_90 PTX, interpreted;
        /// ptx120: compute_120's), or auto (the GPU when usable, else the CPU).
        #[arg(long, default_value = "cpu")]
        device: DeviceChoice,
        /// Convert only this tensor (repeatable).
        #[arg(long = "tensor")]
        tensors: Vec<String>,
        #[arg(long)]
        no_mmap: bool,
    },
    /// Decode every tensor on the CPU and on a device and compare them bit for bit.
    Verify {
        file: PathBuf,
        /// cuda, emulated (the CUDA kernels run on the CPU) or ptx (their
        /// PTX, interpreted; ptx120: compute_120's).
        #[arg(long, default_value = "cuda")]
        device: DeviceChoice,
        #[arg(long, default_value = "f32", value_parser = parse_dtype)]
        dtype: OutType,
        #[arg(long)]
        no_mmap: bool,
    },
    /// Materialize every tensor of a file in GPU memory, timed against the bus.
    Load {
        file: PathBuf,
        /// Only cuda: the point is the GPU.
        #[arg(long, default_value = "cuda")]
        device: DeviceChoice,
        #[arg(long, default_value = "bf16", value_parser = parse_dtype)]
        dtype: OutType,
        /// Also time decoding on the CPU and uploading 16-bit weights.
        #[arg(long)]
        compare: bool,
        #[arg(long)]
        json: bool,
        /// Load tensor-parallel over this many ranks (Megatron-style split by
        /// llama.cpp's tensor names), each rank only its shards, all at once.
        #[arg(long, default_value_t = 1)]
        world: usize,
        /// The GPU of each rank, comma-separated (default: rank i on GPU i;
        /// a GPU may be listed more than once).
        #[arg(long, value_delimiter = ',')]
        devices: Vec<usize>,
    },
    /// Write a model-shaped GGUF file of random valid blocks.
    Synth {
        /// qwen2.5-0.5b-q4_k_m, llama-3-8b-q4_k_m, tiny-llama-q4_k_m or all-types.
        #[arg(long)]
        like: String,
        output: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// List CUDA devices and what this build embeds.
    Devices {
        #[arg(long)]
        json: bool,
    },
    /// Time decoding of random blocks of every type (or those named) on the CPU
    /// and the GPU, against the same run's copy of the output's size.
    Bench(bench::BenchArgs),
    /// Predict the GPU kernels' speed on the H100 and H200 from their PTX,
    /// run by the interpreter: instructions by class, memory sectors, a roofline.
    Model {
        /// The PTX to model: compute_90's (the H100 and H200 run its SASS).
        #[arg(long, default_value_t = 90)]
        ptx: u16,
        #[arg(long)]
        json: bool,
    },
}

/// Writes one line to standard output, or says why it could not.
pub fn write_line(args: std::fmt::Arguments) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| gguf_dequant::Error::io("writing to standard output", e))
}

/// Writes `args` to standard error, ignoring failure: diagnostics must not
/// change what a command does.
pub fn diagnostic(args: std::fmt::Arguments) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// What clap says of a command line it refuses (exit code 2), with the
/// arguments it quotes escaped as every message is (clap quotes them raw), or
/// `--help` and `--version` (to standard output, whose failure is an error).
pub fn usage(e: clap::Error) -> Result<ExitCode> {
    if e.use_stderr() {
        for line in e.render().to_string().lines() {
            errln!("{}", gguf_dequant::text::escape(line));
        }
        return Ok(ExitCode::from(e.exit_code().clamp(0, 255) as u8));
    }
    e.print()
        .map_err(|e| gguf_dequant::Error::io("writing to standard output", e))?;
    Ok(ExitCode::SUCCESS)
}

fn parse_dtype(s: &str) -> std::result::Result<OutType, String> {
    s.parse::<OutType>().map_err(|e| e.to_string())
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        None => default_job::run(),
        Some(Command::Inspect {
            file,
            json,
            no_mmap,
        }) => inspect::run(&open(&file, no_mmap)?, json),
        Some(Command::Convert {
            file,
            output,
            dtype,
            device,
            tensors,
            no_mmap,
        }) => convert::run(&open(&file, no_mmap)?, &output, dtype, device, &tensors),
        Some(Command::Verify {
            file,
            device,
            dtype,
            no_mmap,
        }) => verify::run(&open(&file, no_mmap)?, device, dtype),
        #[cfg(feature = "cuda")]
        Some(Command::Devices { json }) => devices::run(json),
        #[cfg(not(feature = "cuda"))]
        Some(Command::Devices { .. } | Command::Load { .. }) => Err(gguf_dequant::Error::Invalid(
            gguf_dequant::device::NO_CUDA_FEATURE.into(),
        )),
        Some(Command::Bench(args)) => bench::run(args),
        #[cfg(feature = "cuda")]
        Some(Command::Model { ptx, json }) => model::run(ptx, json),
        #[cfg(not(feature = "cuda"))]
        Some(Command::Model { .. }) => Err(gguf_dequant::Error::Invalid(
            gguf_dequant::device::NO_CUDA_FEATURE.into(),
        )),
        Some(Command::Synth { like, output, seed }) => synth::run(&like, &output, seed),
        #[cfg(feature = "cuda")]
        Some(Command::Load {
            file,
            device,
            dtype,
            compare,
            json,
            world,
            devices,
        }) => {
            if device != DeviceChoice::Cuda {
                return Err(gguf_dequant::Error::Invalid(
                    "load runs on --device cuda only".into(),
                ));
            }
            let file = GgufFile::open(&file)?;
            if world > 1 || !devices.is_empty() {
                if compare {
                    return Err(gguf_dequant::Error::Invalid(
                        "--compare is for a load onto one device (no --world or --devices)".into(),
                    ));
                }
                return load::run_parallel(&file, dtype, world, &devices, json);
            }
            load::run(&file, dtype, compare, json)
        }
    }
}

fn open(path: &PathBuf, no_mmap: bool) -> Result<GgufFile> {
    GgufFile::open_with(path, OpenOptions { mmap: !no_mmap })
}

/// A progress bar on a terminal, nothing otherwise.
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}
