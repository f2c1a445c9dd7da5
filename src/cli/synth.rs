//! `synth`: model-shaped GGUF files of random valid blocks, to benchmark on.

use std::path::Path;
use std::process::ExitCode;

use gguf_dequant::gguf::{GgufWriter, Value};
use gguf_dequant::synth::{preset, random_blocks, Rng, PRESETS};
use gguf_dequant::{Error, Result};

use super::progress_bar;

pub fn run(like: &str, out: &Path, seed: u64) -> Result<ExitCode> {
    let plan = preset(like).ok_or_else(|| {
        Error::Invalid(format!(
            "unknown preset '{like}' (known: {})",
            PRESETS.join(", ")
        ))
    })?;
    let mut w = GgufWriter::new();
    w.add_kv(
        "general.architecture",
        Value::String(like.split('-').next().unwrap_or(like).into()),
    )?;
    w.add_kv(
        "general.name",
        Value::String(format!("synthetic {like}: random valid blocks")),
    )?;
    w.add_kv("synth.seed", Value::U64(seed))?;
    let total: u64 = plan
        .iter()
        .map(|t| t.ty.bytes_for(t.ne.iter().product()).unwrap_or(0))
        .sum();
    let pb = progress_bar(total, "generating");
    let mut rng = Rng(seed);
    for t in &plan {
        let n: u64 = t.ne.iter().product();
        let blocks = (n / t.ty.block_elems() as u64) as usize;
        w.add_tensor(
            t.name.clone(),
            t.ty,
            &t.ne,
            random_blocks(t.ty, blocks, &mut rng),
        )?;
        pb.inc((blocks * t.ty.block_bytes()) as u64);
    }
    pb.finish_and_clear();
    w.write_file(out)?;
    eprintln!(
        "wrote {} tensors, {:.1} MB of blocks, to {}",
        plan.len(),
        total as f64 / 1e6,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
