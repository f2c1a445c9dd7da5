//! `synth`: model-shaped GGUF files of random valid blocks, to benchmark on.

use std::path::Path;
use std::process::ExitCode;

use gguf_dequant::gguf::{GgufWriter, Value};
use gguf_dequant::synth::{fill_random_blocks, preset, Rng, PRESETS};
use gguf_dequant::text::escape;
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
    for t in &plan {
        w.add_tensor_deferred(t.name.clone(), t.ty, &t.ne)?;
    }
    // Tensors are generated while writing, one at a time: a model of many GB is
    // written in the memory of its largest tensor, to an output put in place
    // only when complete, as convert's.
    gguf_dequant::output::remove_on_signal();
    let mut rng = Rng(seed);
    w.write_file_with(out, &mut |i, buf| {
        fill_random_blocks(plan[i].ty, buf, &mut rng);
        pb.inc(buf.len() as u64);
        Ok(())
    })?;
    pb.finish_and_clear();
    errln!(
        "wrote {} tensors, {:.1} MB of blocks, to {}",
        plan.len(),
        total as f64 / 1e6,
        escape(&out.to_string_lossy())
    );
    Ok(ExitCode::SUCCESS)
}
