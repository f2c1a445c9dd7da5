//! `load`: every tensor of a GGUF file materialized in GPU memory, timed against
//! the bus: (a) the same run's pinned host-to-device bandwidth applied to the
//! compressed bytes (the limit), (b) decoding on the CPU and uploading 16-bit
//! weights, (c) uploading already-16-bit weights.

use std::process::ExitCode;
use std::time::Instant;

use gguf_dequant::gguf::GgufFile;
use gguf_dequant::gpu::{self, Gpu};
use gguf_dequant::parallel::{ModelLoad, Split};
use gguf_dequant::pipeline::{LoadOptions, LoadReport};
use gguf_dequant::with_out_elem;
use gguf_dequant::OutElem;
use gguf_dequant::{cpu, try_vec, Error, OutType, Result};
use half::{bf16, f16};
use serde_json::json;

use super::progress_bar;

pub fn run(file: &GgufFile, dtype: OutType, compare: bool, as_json: bool) -> Result<ExitCode> {
    let loader = Gpu::new(0)?.loader(&LoadOptions::default())?;
    let gpu = loader.device();
    let total: u64 = file.tensors().iter().map(|t| t.nbytes).sum();
    let pb = progress_bar(total, "loading");
    let whole = ModelLoad::new(file);
    let report = with_out_elem!(dtype, O => {
        whole.load_rank::<O, Gpu>(&loader, 0, &mut |d| pb.set_position(d))?.report
    });
    pb.finish_and_clear();
    let h2d = pinned_h2d_bandwidth(gpu)?;
    let limit = report.compressed_bytes as f64 / h2d;
    let mut doc = json!({
        "device": gpu.name(),
        "dtype": dtype.name(),
        "tensors": file.tensors().len(),
        "compressed_bytes": report.compressed_bytes,
        "output_bytes": report.output_bytes,
        "load_s": report.seconds,
        "pinned_h2d_gb_per_s": h2d / 1e9,
        "bus_limit_s": limit,
        "ratio_to_bus_limit": report.seconds / limit,
    });
    if compare {
        let (cpu_path, upload_only) = match dtype {
            OutType::BF16 => cpu_decode_then_upload::<bf16>(gpu, file)?,
            _ => cpu_decode_then_upload::<f16>(gpu, file)?,
        };
        doc["cpu_decode_and_upload_16bit_s"] = json!(cpu_path);
        doc["upload_16bit_s"] = json!(upload_only);
        doc["speedup_vs_cpu_decode"] = json!(cpu_path / report.seconds);
    }
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
    } else {
        outln!(
            "loaded {} tensors onto {} as {dtype}: {:.1} MB compressed -> {:.1} MB in {:.3} s",
            file.tensors().len(),
            gpu.name(),
            report.compressed_bytes as f64 / 1e6,
            report.output_bytes as f64 / 1e6,
            report.seconds
        );
        outln!(
            "(a) bus limit: {:.3} s at {:.1} GB/s pinned host-to-device: load is {:.2}x the limit",
            limit,
            h2d / 1e9,
            report.seconds / limit
        );
        if compare {
            outln!(
                "(b) CPU decode + upload of 16-bit weights: {:.3} s ({:.1}x slower than the GPU load)",
                doc["cpu_decode_and_upload_16bit_s"].as_f64().unwrap_or(0.0),
                doc["speedup_vs_cpu_decode"].as_f64().unwrap_or(0.0)
            );
            outln!(
                "(c) upload of already-16-bit weights: {:.3} s",
                doc["upload_16bit_s"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `load --world N`: the file tensor-parallel over `world` ranks, rank `r` on
/// GPU `devices[r]` (default `r`), all at once; each rank's bytes and time.
pub fn run_parallel(
    file: &GgufFile,
    dtype: OutType,
    world: usize,
    devices: &[usize],
    as_json: bool,
) -> Result<ExitCode> {
    let world = world.max(devices.len()).max(1);
    // Ranks past those --devices lists run on the GPU of their number: no
    // more of them than this machine has GPUs, checked before anything is
    // allocated per rank.
    if world > devices.len() {
        let count =
            gpu::device_count().map_err(|e| Error::Invalid(format!("--world {world}: {e}")))?;
        if world > count {
            return Err(Error::Invalid(format!(
                "--world {world}: rank {count} and above would run on GPUs this machine does not \
                 have ({count}); name each rank's GPU with --devices"
            )));
        }
    }
    let ordinals: Vec<usize> = (0..world)
        .map(|r| devices.get(r).copied().unwrap_or(r))
        .collect();
    let loaders = ordinals
        .iter()
        .map(|&o| Gpu::new(o)?.loader(&LoadOptions::default()))
        .collect::<Result<Vec<_>>>()?;
    let load = ModelLoad::new(file)
        .split(Split::megatron)
        .world_size(world);
    let start = Instant::now();
    let reports: Vec<LoadReport> = with_out_elem!(dtype, O => {
        load.run::<O, Gpu>(&loaders)?.into_iter().map(|r| r.report).collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let whole: u64 = file.tensors().iter().map(|t| t.nbytes).sum();
    let ranks: Vec<_> = reports
        .iter()
        .zip(&ordinals)
        .map(|(r, o)| {
            json!({
                "device": o,
                "compressed_bytes": r.compressed_bytes,
                "output_bytes": r.output_bytes,
                "load_s": r.seconds,
            })
        })
        .collect();
    if as_json {
        let doc = json!({
            "device": loaders[0].device().name(),
            "dtype": dtype.name(),
            "world": world,
            "file_compressed_bytes": whole,
            "load_s": seconds,
            "ranks": ranks,
        });
        outln!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
    } else {
        outln!(
            "loaded {} tensors over {world} ranks as {dtype} in {seconds:.3} s ({:.1} MB compressed in the file)",
            file.tensors().len(),
            whole as f64 / 1e6
        );
        for (rank, (r, o)) in reports.iter().zip(&ordinals).enumerate() {
            outln!(
                "  rank {rank} on GPU {o}: {:.1} MB compressed -> {:.1} MB in {:.3} s",
                r.compressed_bytes as f64 / 1e6,
                r.output_bytes as f64 / 1e6,
                r.seconds
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Bytes per second of pinned host-to-device copies of 256 MiB, best of a few.
fn pinned_h2d_bandwidth(gpu: &Gpu) -> Result<f64> {
    let n = 256usize << 20;
    let ctx = gpu.context();
    let stream = gpu.stream();
    // SAFETY: the staging contents do not matter for a bandwidth measurement.
    let pinned =
        unsafe { ctx.alloc_pinned::<u8>(n) }.map_err(|e| Error::cuda("pinned allocation", e))?;
    // SAFETY: as above: the device bytes are only overwritten by the copies.
    let mut dev =
        unsafe { stream.alloc::<u8>(n) }.map_err(|e| Error::cuda("device allocation", e))?;
    let mut best = f64::MAX;
    for i in 0..4 {
        let t = Instant::now();
        stream
            .memcpy_htod(&pinned, &mut dev)
            .map_err(|e| Error::cuda("copy", e))?;
        stream.synchronize().map_err(|e| Error::cuda("copy", e))?;
        if i > 0 {
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    Ok(n as f64 / best)
}

/// (b) and (c): decode each tensor on the CPU into 16-bit values and upload them;
/// returns (total seconds, seconds spent uploading).
fn cpu_decode_then_upload<O: OutElem>(gpu: &Gpu, file: &GgufFile) -> Result<(f64, f64)> {
    let stream = gpu.stream();
    let start = Instant::now();
    let mut upload = 0.0;
    let mut keep = Vec::new();
    for t in file.tensors() {
        let mut v = try_vec::<O>(t.n_elems).ok_or_else(|| {
            Error::Length(format!(
                "tensor '{}': {} elements do not fit in memory",
                t.name, t.n_elems
            ))
        })?;
        cpu::dequantize(t.ty, &file.read_tensor_all(t)?, &mut v)
            .map_err(|e| e.for_tensor(&t.name))?;
        if v.is_empty() {
            continue; // nothing to upload (and the driver may refuse zero bytes)
        }
        let u = Instant::now();
        keep.push(
            stream
                .clone_htod(&v)
                .map_err(|e| Error::cuda("upload", e))?,
        );
        stream.synchronize().map_err(|e| Error::cuda("upload", e))?;
        upload += u.elapsed().as_secs_f64();
    }
    Ok((start.elapsed().as_secs_f64(), upload))
}
