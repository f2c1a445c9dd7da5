//! GGUF to safetensors, streamed: one tensor's output in memory at a time, written
//! to a temporary file that is renamed into place only when complete.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use half::{bf16, f16};

use crate::device::Backend;
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, TensorInfo, Value};
use crate::out::{as_bytes, OutElem};
use crate::safetensors::{TensorSpec, Writer};
use crate::types::OutType;

/// What a conversion wrote.
#[derive(Clone, Debug)]
pub struct ConvertReport {
    pub tensors: usize,
    pub input_bytes: u64,
    pub output_bytes: u64,
}

/// The tensors to convert: all, or those named (each must exist), in file order.
pub fn select<'a>(file: &'a GgufFile, names: &[String]) -> Result<Vec<&'a TensorInfo>> {
    for n in names {
        if file.tensor(n).is_none() {
            return Err(Error::NoSuchTensor(n.clone()));
        }
    }
    Ok(file
        .tensors()
        .iter()
        .filter(|t| names.is_empty() || names.iter().any(|n| n == &t.name))
        .collect())
}

/// GGUF metadata that safetensors can keep: strings and numbers, as strings.
pub fn safetensors_metadata(file: &GgufFile) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (k, v) in file.metadata() {
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Array(..) => continue,
            Value::Bool(_) => continue,
            other => other.to_json().to_string(),
        };
        m.insert(k.clone(), s);
    }
    m.insert("format".into(), "pt".into());
    m
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
        if !t.ty.is_dequantizable() {
            return Err(Error::Unsupported {
                tensor: Some(t.name.clone()),
                ty: t.ty,
            });
        }
    }
    let tmp = temp_path(out);
    let result = write_all(file, tensors, &tmp, dtype, backend, progress);
    match result {
        Ok(report) => {
            std::fs::rename(&tmp, out)
                .map_err(|e| Error::io(format!("renaming into {}", out.display()), e))?;
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn temp_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    out.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

fn write_all(
    file: &GgufFile,
    tensors: &[&TensorInfo],
    path: &Path,
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
    let f = File::create(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    let mut w = Writer::new(
        BufWriter::with_capacity(1 << 20, f),
        specs,
        &safetensors_metadata(file),
    )?;
    let mut report = ConvertReport {
        tensors: 0,
        input_bytes: 0,
        output_bytes: 0,
    };
    for t in tensors {
        report.output_bytes += match dtype {
            OutType::F32 => decode_and_write::<f32, _>(backend, file, t, &mut w)?,
            OutType::F16 => decode_and_write::<f16, _>(backend, file, t, &mut w)?,
            OutType::BF16 => decode_and_write::<bf16, _>(backend, file, t, &mut w)?,
        };
        report.tensors += 1;
        report.input_bytes += t.nbytes;
        progress(t);
    }
    w.finish()?
        .into_inner()
        .map_err(|e| Error::io("flushing the output", e.into_error()))?
        .sync_all()
        .map_err(|e| Error::io("syncing the output", e))?;
    Ok(report)
}

/// Decodes one tensor and writes it.
fn decode_and_write<O: OutElem, W: std::io::Write>(
    backend: &Backend,
    file: &GgufFile,
    t: &TensorInfo,
    w: &mut Writer<W>,
) -> Result<u64> {
    let n = usize::try_from(t.n_elems)
        .map_err(|_| Error::Length(format!("tensor '{}' is too large", t.name)))?;
    let mut out = vec![O::default(); n];
    backend.decode_tensor(file, t, &mut out)?;
    let bytes = as_bytes(&out);
    w.write_tensor(bytes)?;
    Ok(bytes.len() as u64)
}
