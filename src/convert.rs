//! GGUF to safetensors, streamed: one tensor's output in memory at a time,
//! written to an output that is put in place only when complete
//! ([`crate::output`]).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::alloc::try_vec;
use crate::device::Backend;
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, TensorInfo, Value};
use crate::out::{as_bytes, OutElem};
use crate::output::OutputFile;
use crate::safetensors::{TensorSpec, Writer};
use crate::types::OutType;

/// What a conversion wrote.
#[derive(Clone, Debug)]
pub struct ConvertReport {
    pub tensors: usize,
    pub input_bytes: u64,
    pub output_bytes: u64,
    /// GGUF metadata keys not kept as they were, with the reason.
    pub metadata_left_out: Vec<String>,
}

/// The tensors to convert: all, or those named (each must exist; a name given
/// twice is one tensor), in file order. Linear in names and tensors: each name
/// is looked up, never compared with every tensor.
pub fn select<'a>(file: &'a GgufFile, names: &[String]) -> Result<Vec<&'a TensorInfo>> {
    if names.is_empty() {
        return Ok(file.tensors().iter().collect());
    }
    let mut wanted = HashSet::with_capacity(names.len());
    for n in names {
        let t = file
            .tensor(n)
            .ok_or_else(|| Error::NoSuchTensor(n.clone()))?;
        wanted.insert(t.name.as_str());
    }
    Ok(file
        .tensors()
        .iter()
        .filter(|t| wanted.contains(t.name.as_str()))
        .collect())
}

/// GGUF metadata as safetensors metadata (a map of strings to strings), as
/// [`safetensors_metadata`] makes it, and what it had to leave out.
#[derive(Clone, Debug, Default)]
pub struct MetadataMap {
    pub entries: BTreeMap<String, String>,
    /// Keys left out, each with the reason (said as a warning by the CLI).
    pub left_out: Vec<String>,
}

/// The key safetensors readers (PyTorch's loaders) expect, with value "pt".
pub const FORMAT_KEY: &str = "format";
/// Where a GGUF key that is itself named `format` goes.
pub const GGUF_FORMAT_KEY: &str = "gguf.format";

/// How GGUF metadata maps into safetensors metadata:
/// - strings as they are; integers in decimal; floats in their shortest
///   decimal form that reads back to the same value, and `NaN`, `inf`,
///   `-inf` for the others (never quoted);
/// - booleans and arrays are left out (safetensors values are strings), each
///   named in `left_out`;
/// - `format` is `pt`, as safetensors readers expect: a GGUF key named
///   `format` is kept as `gguf.format` (and said so);
/// - values are added in file order while the header stays under the
///   reference reader's limit (`safetensors::MAX_HEADER_BYTES`, with
///   `header_rest` bytes taken by the tensors' entries); a value that would
///   pass it is left out and named.
pub fn safetensors_metadata(file: &GgufFile, header_rest: usize) -> MetadataMap {
    let mut m = MetadataMap::default();
    m.entries.insert(FORMAT_KEY.into(), "pt".into());
    // JSON size so far: the braces and the format entry, escaped generously
    let mut size = header_rest + 64;
    for (k, v) in file.metadata() {
        let value = match v {
            Value::String(s) => s.clone(),
            Value::F32(x) => float_text(f64::from(*x), x.to_string()),
            Value::F64(x) => float_text(*x, x.to_string()),
            Value::Array(..) | Value::Packed(_) | Value::Bool(_) => {
                m.left_out.push(format!(
                    "{k}: {} values have no safetensors form",
                    v.type_name()
                ));
                continue;
            }
            other => other.to_string(),
        };
        let key = if k == FORMAT_KEY {
            m.left_out.push(format!(
                "{k}: kept as '{GGUF_FORMAT_KEY}' ('{FORMAT_KEY}' is safetensors' own)"
            ));
            GGUF_FORMAT_KEY.to_string()
        } else {
            k.clone()
        };
        // JSON escaping at most sextuples a byte (\u00XX)
        let cost = 6 * (key.len() + value.len()) + 8;
        if size + cost > crate::safetensors::MAX_HEADER_BYTES {
            m.left_out.push(format!(
                "{key}: its {} bytes would pass safetensors' header limit of {} bytes",
                value.len(),
                crate::safetensors::MAX_HEADER_BYTES
            ));
            continue;
        }
        size += cost;
        m.entries.insert(key, value);
    }
    m
}

/// A float's text: its shortest round-trip decimal form (`text`), or NaN/inf.
fn float_text(v: f64, text: String) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        text
    }
}

/// Converts `tensors` of `file` into a safetensors file at `out` on `backend`.
/// `progress` is called after each tensor with its input bytes.
pub fn convert(
    file: &GgufFile,
    tensors: &[&TensorInfo],
    out: &Path,
    dtype: OutType,
    backend: &Backend,
    progress: &mut dyn FnMut(&TensorInfo),
) -> Result<ConvertReport> {
    // Refuse undecodable types before writing anything.
    for t in tensors {
        t.check_decodable()?;
    }
    // Checked and opened before any work; in place only when complete.
    let mut output = OutputFile::create(out, file.source_identity())?;
    let data: u64 = tensors
        .iter()
        .map(|t| t.n_elems.saturating_mul(dtype.size() as u64))
        .fold(0, u64::saturating_add);
    output.check_space(data)?;
    let report = write_all(file, tensors, output.file(), dtype, backend, progress)?;
    output.commit()?;
    Ok(report)
}

fn write_all(
    file: &GgufFile,
    tensors: &[&TensorInfo],
    out: &mut File,
    dtype: OutType,
    backend: &Backend,
    progress: &mut dyn FnMut(&TensorInfo),
) -> Result<ConvertReport> {
    let specs: Vec<TensorSpec> = tensors
        .iter()
        .map(|t| TensorSpec {
            name: t.name.clone(),
            dtype,
            shape: t.shape_row_major(),
        })
        .collect();
    let metadata = safetensors_metadata(file, crate::safetensors::header_bytes(&specs)?);
    let mut w = Writer::new(
        BufWriter::with_capacity(1 << 20, out),
        specs,
        &metadata.entries,
    )?;
    let mut report = ConvertReport {
        tensors: 0,
        input_bytes: 0,
        output_bytes: 0,
        metadata_left_out: metadata.left_out,
    };
    for t in tensors {
        report.output_bytes += crate::with_out_elem!(dtype, O => {
            decode_and_write::<O, _>(backend, file, t, &mut w)?
        });
        report.tensors += 1;
        report.input_bytes += t.nbytes;
        progress(t);
    }
    w.finish()?
        .into_inner()
        .map_err(|e| Error::io("flushing the output", e.into_error()))?;
    Ok(report)
}

/// Elements decoded at a time on the CPU (64 MiB of f32): `convert`'s memory
/// does not depend on the largest tensor.
const PIECE_ELEMS: usize = 16 << 20;

/// Decodes one tensor and writes it: on the CPU in pieces of whole blocks, on
/// a device whole (its output is in device memory anyway); host buffers are
/// allocated fallibly, so a tensor too large for memory is an error.
fn decode_and_write<O: OutElem, W: std::io::Write>(
    backend: &Backend,
    file: &GgufFile,
    t: &TensorInfo,
    w: &mut Writer<W>,
) -> Result<u64> {
    let too_large = || Error::Length(format!("{} elements do not fit in memory", t.n_elems));
    let n = usize::try_from(t.n_elems).map_err(|_| too_large())?;
    if matches!(backend, Backend::Cpu) {
        // read from the file, not a mapping: a file that shrinks is an error
        let (qk, bb) = (t.ty.block_elems(), t.ty.block_bytes());
        let piece_blocks = (PIECE_ELEMS / qk).max(1);
        let piece_bytes = (piece_blocks * bb) as u64;
        let mut out = try_vec::<O>(n.min(piece_blocks * qk) as u64).ok_or_else(too_large)?;
        let mut src = try_vec::<u8>(t.nbytes.min(piece_bytes)).ok_or_else(too_large)?;
        for at in (0..t.nbytes).step_by(piece_bytes as usize) {
            let part = &mut src[..(t.nbytes - at).min(piece_bytes) as usize];
            file.read_tensor(t, at, part)?;
            let y = &mut out[..part.len() / bb * qk];
            crate::cpu::dequantize(t.ty, part, y).map_err(|e| e.for_tensor(&t.name))?;
            w.write_part(as_bytes(y))?;
        }
        if n == 0 {
            w.write_part(&[])?;
        }
        return Ok((n * std::mem::size_of::<O>()) as u64);
    }
    let mut out = try_vec::<O>(n as u64).ok_or_else(too_large)?;
    backend.decode_tensor(file, t, &mut out)?;
    let bytes = as_bytes(&out);
    w.write_tensor(bytes)?;
    Ok(bytes.len() as u64)
}
