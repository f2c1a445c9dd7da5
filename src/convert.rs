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
use crate::shard::Shard;
use crate::types::OutType;

/// What a conversion wrote.
#[derive(Clone, Debug)]
pub struct ConvertReport {
    /// Tensors written.
    pub tensors: usize,
    /// Compressed bytes read.
    pub input_bytes: u64,
    /// Decoded bytes written.
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
    /// The safetensors metadata, by key.
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
    let report = write_all(
        file,
        tensors,
        output.file(),
        dtype,
        backend,
        PIECE_ELEMS,
        progress,
    )?;
    output.commit()?;
    Ok(report)
}

/// Writes `tensors` as safetensors to `out`, decoded on `backend` in pieces
/// of at most `piece_elems` elements.
fn write_all(
    file: &GgufFile,
    tensors: &[&TensorInfo],
    out: &mut File,
    dtype: OutType,
    backend: &Backend,
    piece_elems: u64,
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
            decode_and_write::<O, _>(backend, file, t, piece_elems, &mut w)?
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

/// Elements decoded at a time (64 MiB of f32): `convert`'s memory does not
/// depend on the largest tensor, on any backend.
const PIECE_ELEMS: u64 = 16 << 20;

/// Decodes one tensor on `backend` and writes it, in pieces of at most
/// `piece_elems` ([`Shard::pieces`]); the host buffer is allocated
/// fallibly, so a piece too large for memory is an error.
fn decode_and_write<O: OutElem, W: std::io::Write>(
    backend: &Backend,
    file: &GgufFile,
    t: &TensorInfo,
    piece_elems: u64,
    w: &mut Writer<W>,
) -> Result<u64> {
    let too_large = || Error::Length(format!("{} elements do not fit in memory", t.n_elems));
    let pieces: Vec<Shard> = Shard::pieces(t, piece_elems).collect();
    let largest = pieces.iter().map(Shard::n_elems).max().unwrap_or(0);
    let mut out = try_vec::<O>(largest).ok_or_else(too_large)?;
    for piece in pieces {
        let y = &mut out[..piece.n_elems() as usize];
        backend.decode_part(file, t, &piece, y)?;
        w.write_part(as_bytes(y))?;
    }
    Ok(t.n_elems.saturating_mul(std::mem::size_of::<O>() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceChoice;
    use crate::gguf::GgufWriter;
    use crate::synth::{random_blocks, Rng};
    use crate::types::GgmlType;

    /// Tensors of several shapes: rows of several blocks, a long vector, a
    /// row of one block, an empty one.
    fn file() -> GgufFile {
        let mut w = GgufWriter::new();
        let mut rng = Rng(7);
        let mut add = |name: &str, ty: GgmlType, ne: &[u64]| {
            let n: u64 = ne.iter().product();
            let blocks = random_blocks(ty, (n / ty.block_elems() as u64) as usize, &mut rng);
            w.add_tensor(name, ty, ne, blocks).unwrap();
        };
        add("q4_K", GgmlType::Q4_K, &[512, 7]);
        add("q8_0.vector", GgmlType::Q8_0, &[32 * 100]);
        add("q6_K.narrow", GgmlType::Q6_K, &[256, 5]);
        add("iq4_nl.empty", GgmlType::IQ4_NL, &[32, 0]);
        GgufFile::from_bytes(w.to_bytes()).unwrap()
    }

    /// The bytes `write_all` writes with pieces of `piece_elems`.
    fn written(backend: &Backend, dtype: OutType, piece_elems: u64) -> Vec<u8> {
        let f = file();
        let tensors: Vec<&TensorInfo> = f.tensors().iter().collect();
        let path = std::env::temp_dir().join(format!(
            "gdq-convert-pieces-{}-{}-{piece_elems}-{}",
            std::process::id(),
            backend.kind(),
            dtype.name()
        ));
        let mut out = File::create(&path).unwrap();
        write_all(
            &f,
            &tensors,
            &mut out,
            dtype,
            backend,
            piece_elems,
            &mut |_| {},
        )
        .unwrap();
        drop(out);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        bytes
    }

    /// Pieces of a few blocks, or of several rows, write the same bytes as
    /// whole tensors, on every backend this build has, each the CPU's.
    #[test]
    fn pieces_write_what_whole_tensors_write() {
        let mut backends = vec![DeviceChoice::Cpu];
        if cfg!(feature = "cuda") {
            backends.push(DeviceChoice::Emulated);
        }
        for dtype in [OutType::F32, OutType::BF16] {
            let whole = written(&Backend::Cpu, dtype, u64::MAX);
            for &choice in &backends {
                let (backend, _) = Backend::open(choice).unwrap();
                for piece in [1, 100, 512 * 3, 1000, 4096] {
                    let got = written(&backend, dtype, piece);
                    assert!(
                        got == whole,
                        "{} in pieces of {piece} as {dtype}",
                        backend.kind()
                    );
                }
            }
        }
    }
}
