//! `convert`: a GGUF file to safetensors.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use gguf_dequant::convert::{convert, select};
use gguf_dequant::device::{Backend, DeviceChoice};
use gguf_dequant::gguf::GgufFile;
use gguf_dequant::text::escape;
use gguf_dequant::{OutType, Result};

use super::progress_bar;

pub fn run(
    file: &GgufFile,
    out: &Path,
    dtype: OutType,
    device: DeviceChoice,
    names: &[String],
) -> Result<ExitCode> {
    let tensors = select(file, names)?;
    gguf_dequant::output::remove_on_signal();
    let (backend, note) = Backend::open(device)?;
    if let Some(n) = note {
        errln!("{n}");
    } else if device == DeviceChoice::Auto {
        errln!("using {backend}");
    }
    let total: u64 = tensors.iter().map(|t| t.nbytes).sum();
    let pb = progress_bar(total, "converting");
    let start = Instant::now();
    let report = convert(file, &tensors, out, dtype, &backend, &mut |t| {
        pb.inc(t.nbytes)
    })?;
    pb.finish_and_clear();
    if !report.metadata_left_out.is_empty() {
        errln!(
            "note: GGUF metadata not kept as it is: {}",
            escape(&report.metadata_left_out.join("; "))
        );
    }
    errln!(
        "wrote {} tensors ({} bytes of {dtype}) to {} in {:.2} s on {backend}",
        report.tensors,
        report.output_bytes,
        escape(&out.to_string_lossy()),
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
