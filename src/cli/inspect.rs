//! `inspect`: what a GGUF file holds.

use std::process::ExitCode;

use gguf_dequant::gguf::GgufFile;
use gguf_dequant::text::{escape, escape_cut};
use gguf_dequant::Result;

/// The widest tensor name the table shows whole, in characters.
const NAME_COLUMN: usize = 64;
use serde_json::json;

pub fn run(file: &GgufFile, as_json: bool) -> Result<ExitCode> {
    if as_json {
        let metadata: serde_json::Map<String, serde_json::Value> = file
            .metadata()
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect();
        let tensors: Vec<_> = file
            .tensors()
            .iter()
            .map(|t| json!({"name": t.name, "type": t.ty.name(), "ne": t.ne, "offset": t.offset, "nbytes": t.nbytes}))
            .collect();
        let doc = json!({"version": file.version(), "alignment": file.alignment(), "metadata": metadata, "tensors": tensors});
        outln!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "GGUF v{}, alignment {}, tensor data at byte {}, {} metadata keys, {} tensors",
        file.version(),
        file.alignment(),
        file.data_offset(),
        file.metadata().len(),
        file.tensors().len()
    );
    if !file.metadata().is_empty() {
        outln!("\nmetadata:");
        for (k, v) in file.metadata() {
            outln!("  {} [{}] = {v}", escape(k), v.type_name());
        }
    }
    if !file.tensors().is_empty() {
        // names escaped, and cut past NAME_COLUMN characters (--json has them whole)
        let w = file
            .tensors()
            .iter()
            .map(|t| escape_cut(&t.name, NAME_COLUMN).chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        outln!("\ntensors:");
        outln!(
            "  {:<w$}  {:<8} {:<24} {:>14} {:>14}",
            "name",
            "type",
            "ne",
            "offset",
            "bytes"
        );
        for t in file.tensors() {
            let ne = format!("{:?}", t.ne);
            outln!(
                "  {:<w$}  {:<8} {:<24} {:>14} {:>14}",
                escape_cut(&t.name, NAME_COLUMN),
                t.ty.name(),
                ne,
                t.offset,
                t.nbytes
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
