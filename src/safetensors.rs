//! A streaming safetensors writer: the header is written first from the tensors'
//! names, dtypes and shapes, then each tensor's bytes in order, so that a
//! converter holds one tensor in memory at a time.
//!
//! Format: an 8-byte little-endian header length, a JSON header
//! `{"__metadata__": {..}, name: {"dtype", "shape", "data_offsets": [begin, end]}}`
//! padded with spaces to a multiple of 8, then the data.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::types::OutType;

/// One tensor as the header describes it.
#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: OutType,
    /// Row-major shape.
    pub shape: Vec<u64>,
}

/// The largest header the reference reader (the `safetensors` package) takes.
pub const MAX_HEADER_BYTES: usize = 100_000_000;

/// The name safetensors keeps for its metadata: no tensor may have it.
pub const METADATA_NAME: &str = "__metadata__";

impl TensorSpec {
    pub fn nbytes(&self) -> Result<u64> {
        if self.shape.contains(&0) {
            return Ok(0);
        }
        self.shape
            .iter()
            .try_fold(self.dtype.size() as u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                Error::Length(format!(
                    "tensor '{}' is too large for safetensors",
                    self.name
                ))
            })
    }
}

/// The header's bytes taken by the tensors' entries (no metadata).
pub fn header_bytes(specs: &[TensorSpec]) -> Result<usize> {
    Ok(header(specs, &BTreeMap::new())?.len())
}

/// The header bytes, length prefix included: an error for a tensor named
/// `__metadata__` or twice, and for a header past [`MAX_HEADER_BYTES`].
pub fn header(specs: &[TensorSpec], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut obj = Map::new();
    if let Some(s) = specs.iter().find(|s| s.name == METADATA_NAME) {
        return Err(Error::Invalid(format!(
            "a tensor is named '{}', the name safetensors reserves for its metadata",
            s.name
        )));
    }
    if !metadata.is_empty() {
        obj.insert("__metadata__".into(), json!(metadata));
    }
    let mut offset = 0u64;
    for s in specs {
        let end = offset
            .checked_add(s.nbytes()?)
            .ok_or_else(|| Error::Length("total tensor size overflows".into()))?;
        if obj
            .insert(
                s.name.clone(),
                json!({"dtype": s.dtype.safetensors_dtype(), "shape": s.shape, "data_offsets": [offset, end]}),
            )
            .is_some()
        {
            return Err(Error::Invalid(format!("tensor name '{}' appears twice", s.name)));
        }
        offset = end;
    }
    let mut text = serde_json::to_vec(&Value::Object(obj)).expect("JSON of strings and numbers");
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    if text.len() > MAX_HEADER_BYTES {
        return Err(Error::Invalid(format!(
            "the safetensors header would be {} bytes, past the {MAX_HEADER_BYTES} that readers take",
            text.len()
        )));
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&text);
    Ok(out)
}

/// Writes tensors in the order of their specs, checking each one's length.
pub struct Writer<W: Write> {
    w: W,
    specs: Vec<TensorSpec>,
    next: usize,
    /// Bytes of tensor `next` written so far (by parts).
    partial: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(
        mut w: W,
        specs: Vec<TensorSpec>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let h = header(&specs, metadata)?;
        w.write_all(&h)
            .map_err(|e| Error::io("writing the safetensors header", e))?;
        Ok(Writer {
            w,
            specs,
            next: 0,
            partial: 0,
        })
    }

    /// Writes the next part of the current tensor's bytes: tensors too large
    /// to hold in memory are written in parts, in order.
    pub fn write_part(&mut self, bytes: &[u8]) -> Result<()> {
        let spec = self
            .specs
            .get(self.next)
            .ok_or_else(|| Error::Invalid("more tensors written than declared".into()))?;
        let total = spec.nbytes()?;
        let end = self.partial + bytes.len() as u64;
        if end > total {
            return Err(Error::Length(format!(
                "tensor '{}': {end} bytes written, {total} declared",
                spec.name
            )));
        }
        self.w
            .write_all(bytes)
            .map_err(|e| Error::io(format!("writing tensor '{}'", spec.name), e))?;
        self.partial = end;
        if end == total {
            self.next += 1;
            self.partial = 0;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<W> {
        if self.next != self.specs.len() {
            return Err(Error::Invalid(format!(
                "{} of {} tensors written",
                self.next,
                self.specs.len()
            )));
        }
        self.w
            .flush()
            .map_err(|e| Error::io("flushing the output", e))?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_padded_and_offsets_chain() {
        let specs = vec![
            TensorSpec {
                name: "a".into(),
                dtype: OutType::F32,
                shape: vec![2, 3],
            },
            TensorSpec {
                name: "b".into(),
                dtype: OutType::BF16,
                shape: vec![5],
            },
        ];
        let meta = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let h = header(&specs, &meta).unwrap();
        let n = u64::from_le_bytes(h[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        assert_eq!(h.len(), 8 + n);
        let v: Value = serde_json::from_slice(&h[8..]).unwrap();
        assert_eq!(v["a"]["data_offsets"], json!([0, 24]));
        assert_eq!(v["b"]["data_offsets"], json!([24, 34]));
        assert_eq!(v["b"]["dtype"], "BF16");
        assert_eq!(v["__metadata__"]["k"], "v");
    }

    #[test]
    fn writer_checks_lengths_and_count() {
        let specs = vec![TensorSpec {
            name: "a".into(),
            dtype: OutType::F16,
            shape: vec![2],
        }];
        let mut w = Writer::new(Vec::new(), specs.clone(), &BTreeMap::new()).unwrap();
        assert!(
            w.write_part(&[0u8; 5]).is_err(),
            "more than the tensor holds"
        );
        w.write_part(&[0u8; 3]).unwrap();
        w.write_part(&[0u8; 1]).unwrap();
        assert!(
            w.write_part(&[0u8; 1]).is_err(),
            "more tensors than declared"
        );
        w.finish().unwrap();
        let mut w = Writer::new(Vec::new(), specs.clone(), &BTreeMap::new()).unwrap();
        w.write_part(&[0u8; 3]).unwrap();
        assert!(w.finish().is_err(), "a tensor written in part");
        let w = Writer::new(Vec::new(), specs, &BTreeMap::new()).unwrap();
        assert!(w.finish().is_err());
    }
}
