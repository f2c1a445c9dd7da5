//! `devices`: the CUDA devices here, and the kernels this build embeds.

use std::process::ExitCode;

use gguf_dequant::{gpu, Result};
use serde_json::json;

pub fn run(as_json: bool) -> Result<ExitCode> {
    let embedded = gpu::kernels_embedded();
    let archs = gpu::embedded_archs();
    let devices = gpu::devices();
    if as_json {
        let (list, error) = match &devices {
            Ok(d) => (
                d.iter()
                    .map(|d| json!({"ordinal": d.ordinal, "name": d.name, "compute_capability": format!("{}.{}", d.compute_capability.0, d.compute_capability.1), "total_mem": d.total_mem}))
                    .collect::<Vec<_>>(),
                None,
            ),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let doc = json!({"kernels_embedded": embedded, "architectures": archs, "devices": list, "error": error});
        outln!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        return Ok(ExitCode::SUCCESS);
    }
    if embedded {
        outln!("kernels: embedded, for {}", archs.join(", "));
    } else {
        outln!("kernels: not embedded: {}", gpu::NO_KERNELS_HELP);
    }
    match devices {
        Ok(d) if d.is_empty() => outln!("devices: none"),
        Ok(d) => {
            for d in d {
                outln!(
                    "device {}: {} (compute capability {}.{}, {:.1} GiB)",
                    d.ordinal,
                    d.name,
                    d.compute_capability.0,
                    d.compute_capability.1,
                    d.total_mem as f64 / (1u64 << 30) as f64
                );
            }
        }
        Err(e) => outln!("devices: none usable ({e})"),
    }
    Ok(ExitCode::SUCCESS)
}
