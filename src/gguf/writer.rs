//! A GGUF writer: builds valid files (v3 by default) for tests, synthetic models
//! and fuzz seeds. It refuses at `add_*` time anything the reader would refuse,
//! so what it writes always reads back.

use std::io::{self, Write};

use super::reader::{align_up, MAGIC};
use super::value::{Array, Value, ValueType};
use super::{DEFAULT_ALIGNMENT, MAX_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS};
use crate::error::{Error, Result};
use crate::types::GgmlType;

/// Tensor data given to [`GgufWriter::add_tensor`]: an owned `Vec<u8>` (moved)
/// or borrowed bytes (copied).
pub trait TensorBytes {
    /// The bytes, owned.
    fn into_bytes(self) -> Vec<u8>;
}
impl TensorBytes for Vec<u8> {
    fn into_bytes(self) -> Vec<u8> {
        self
    }
}
impl TensorBytes for &[u8] {
    fn into_bytes(self) -> Vec<u8> {
        self.to_vec()
    }
}
impl TensorBytes for &Vec<u8> {
    fn into_bytes(self) -> Vec<u8> {
        self.clone()
    }
}
impl<const N: usize> TensorBytes for [u8; N] {
    fn into_bytes(self) -> Vec<u8> {
        self.to_vec()
    }
}
impl<const N: usize> TensorBytes for &[u8; N] {
    fn into_bytes(self) -> Vec<u8> {
        self.to_vec()
    }
}

struct PendingTensor {
    name: String,
    ty: GgmlType,
    ne: Vec<u64>,
    data: TensorData,
}

/// A tensor's bytes: given when added, or produced while writing, so that a large
/// file is written without holding its data in memory.
enum TensorData {
    Bytes(Vec<u8>),
    Deferred(usize),
}

impl TensorData {
    fn len(&self) -> usize {
        match self {
            TensorData::Bytes(b) => b.len(),
            TensorData::Deferred(n) => *n,
        }
    }
}

/// Produces the bytes of deferred tensors: called with the tensor's index (in the
/// order added) and a buffer of exactly its byte size to fill.
pub type FillTensor<'a> = dyn FnMut(usize, &mut [u8]) -> Result<()> + 'a;

/// The fill of writers that have no deferred tensors.
pub(crate) fn no_deferred(i: usize, _: &mut [u8]) -> Result<()> {
    Err(Error::Invalid(format!(
        "GGUF writer: tensor {i} was added deferred: write it with write_to_with"
    )))
}

/// Builds a GGUF file: key-value pairs and tensors in the order added, each
/// tensor's data aligned to `general.alignment` if set (default 32).
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    kvs: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    /// An empty GGUF v3 file.
    pub fn new() -> Self {
        GgufWriter {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            kvs: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// Writes version 2 instead of 3 (the layouts are the same for little-endian files).
    pub fn set_version(&mut self, version: u32) -> Result<&mut Self> {
        if !(2..=3).contains(&version) {
            return Err(Error::Invalid(format!(
                "GGUF writer: version {version} is not 2 or 3"
            )));
        }
        self.version = version;
        Ok(self)
    }

    /// The alignment the data will be written with.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Adds a key-value pair. Refuses a duplicate key, an array whose elements
    /// are not all of its element type, arrays nested too deep, and a
    /// `general.alignment` that is not a u32 power of two up to 1 MiB (which,
    /// when valid, becomes the alignment of the tensor data). An array given
    /// element by element ([`Value::Array`]) is stored packed ([`Value::Packed`]).
    pub fn add_kv(&mut self, key: impl Into<String>, value: Value) -> Result<&mut Self> {
        let key = key.into();
        let err = |m: String| Err(Error::Invalid(format!("GGUF writer: key '{key}': {m}")));
        if self.kvs.iter().any(|(k, _)| *k == key) {
            return err("duplicate key".into());
        }
        let value = match value {
            Value::Array(ty, items) => match Array::from_values(ty, items) {
                Ok(a) => Value::Packed(a),
                Err(m) => return err(m),
            },
            v => v,
        };
        if let Value::Packed(a) = &value {
            if a.depth() > MAX_ARRAY_DEPTH {
                return err(format!("arrays nested more than {MAX_ARRAY_DEPTH} deep"));
            }
        }
        if key == "general.alignment" {
            match value {
                Value::U32(a) if a != 0 && a.is_power_of_two() && u64::from(a) <= MAX_ALIGNMENT => {
                    self.alignment = a.into()
                }
                _ => {
                    return err(format!(
                        "must be a u32 power of two up to {MAX_ALIGNMENT}, not {} {value}",
                        value.type_name()
                    ))
                }
            }
        }
        self.kvs.push((key, value));
        Ok(self)
    }

    /// Adds a tensor with dimensions `ne` (ggml order, fastest first). `data`
    /// must be exactly `ty.bytes_for(product of ne)` bytes.
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        ty: GgmlType,
        ne: &[u64],
        data: impl TensorBytes,
    ) -> Result<&mut Self> {
        self.push_tensor(name.into(), ty, ne, Some(data.into_bytes()))
    }

    /// Adds a tensor whose bytes are produced at write time by
    /// [`GgufWriter::write_to_with`]: a synthetic model of many GB is then
    /// written holding one tensor at a time.
    pub fn add_tensor_deferred(
        &mut self,
        name: impl Into<String>,
        ty: GgmlType,
        ne: &[u64],
    ) -> Result<&mut Self> {
        self.push_tensor(name.into(), ty, ne, None)
    }

    fn push_tensor(
        &mut self,
        name: String,
        ty: GgmlType,
        ne: &[u64],
        data: Option<Vec<u8>>,
    ) -> Result<&mut Self> {
        let err = |m: String| Err(Error::Invalid(format!("GGUF writer: tensor '{name}': {m}")));
        if self.tensors.iter().any(|t| t.name == name) {
            return err("duplicate tensor name".into());
        }
        if ne.is_empty() || ne.len() > MAX_DIMS as usize {
            return err(format!("{} dimensions, not 1..={MAX_DIMS}", ne.len()));
        }
        let Some(n_elems) = super::element_count(ne) else {
            return err(format!(
                "element count of {ne:?} overflows (a zero dimension aside)"
            ));
        };
        if !ne[0].is_multiple_of(ty.block_elems() as u64) {
            return err(format!(
                "ne[0] = {} is not a multiple of the {ty} block size {}",
                ne[0],
                ty.block_elems()
            ));
        }
        let Some(len) = super::byte_count(ty, ne).and_then(|b| usize::try_from(b).ok()) else {
            return err(format!("{n_elems} {ty} elements do not fit in memory"));
        };
        let data = match data {
            Some(bytes) if bytes.len() != len => {
                return err(format!(
                    "{} bytes of data, but {n_elems} {ty} elements take {len}",
                    bytes.len()
                ))
            }
            Some(bytes) => TensorData::Bytes(bytes),
            None => TensorData::Deferred(len),
        };
        self.tensors.push(PendingTensor {
            name,
            ty,
            ne: ne.to_vec(),
            data,
        });
        Ok(self)
    }

    /// Writes the file.
    pub fn write_to(&self, w: impl Write) -> Result<()> {
        self.write_to_with(w, &mut no_deferred)
    }

    /// Writes the file, asking `fill` for the bytes of each deferred tensor.
    pub fn write_to_with(&self, w: impl Write, fill: &mut FillTensor<'_>) -> Result<()> {
        let mut w = io::BufWriter::new(w);
        self.write_raw(&mut w, fill)?;
        w.flush().map_err(|e| Error::io("writing GGUF", e))
    }

    /// The file's bytes. For a writer without deferred tensors (whose bytes
    /// only [`GgufWriter::write_to_with`] can produce).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v)
            .expect("writing to a Vec fails only for deferred tensors");
        v
    }

    fn write_raw(&self, w: &mut impl Write, fill: &mut FillTensor<'_>) -> Result<()> {
        let io_err = |e| Error::io("writing GGUF", e);
        // The tensors' offsets first, so that an impossible layout is refused
        // before anything is written.
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut offset = 0u64;
        for t in &self.tensors {
            offsets.push(offset);
            offset = (t.data.len() as u64)
                .checked_add(offset)
                .and_then(|end| align_up(end, self.alignment))
                .ok_or_else(|| {
                    Error::Invalid("GGUF writer: tensor data exceeds 2^64 bytes".into())
                })?;
        }
        // The header is written as it goes (a large array is not copied), then
        // the data tensor by tensor, each padded to the alignment.
        let mut h = Counting { w, n: 0 };
        let header = |h: &mut Counting<'_, _>| -> io::Result<()> {
            h.write_all(MAGIC)?;
            h.write_all(&self.version.to_le_bytes())?;
            h.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
            h.write_all(&(self.kvs.len() as u64).to_le_bytes())?;
            for (k, v) in &self.kvs {
                put_str(h, k)?;
                h.write_all(&v.value_type().id().to_le_bytes())?;
                put_value(h, v)?;
            }
            for (t, offset) in self.tensors.iter().zip(&offsets) {
                put_str(h, &t.name)?;
                h.write_all(&(t.ne.len() as u32).to_le_bytes())?;
                for n in &t.ne {
                    h.write_all(&n.to_le_bytes())?;
                }
                h.write_all(&t.ty.id().to_le_bytes())?;
                h.write_all(&offset.to_le_bytes())?;
            }
            Ok(())
        };
        header(&mut h).map_err(io_err)?;
        let zeros = vec![0u8; self.alignment as usize];
        let pad = |len: u64| {
            let a = self.alignment;
            ((a - len % a) % a) as usize
        };
        let header_len = h.n;
        w.write_all(&zeros[..pad(header_len)]).map_err(io_err)?;
        let mut buf = Vec::new();
        for (i, t) in self.tensors.iter().enumerate() {
            let bytes = match &t.data {
                TensorData::Bytes(b) => b.as_slice(),
                TensorData::Deferred(n) => {
                    buf.resize(*n, 0);
                    fill(i, &mut buf)?;
                    buf.as_slice()
                }
            };
            w.write_all(bytes).map_err(io_err)?;
            w.write_all(&zeros[..pad(bytes.len() as u64)])
                .map_err(io_err)?;
        }
        Ok(())
    }
}

/// A writer that counts the bytes written through it.
struct Counting<'a, W: Write> {
    w: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.w.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

fn put_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn put_value(w: &mut impl Write, v: &Value) -> io::Result<()> {
    match v {
        Value::U8(x) => w.write_all(&[*x]),
        Value::I8(x) => w.write_all(&x.to_le_bytes()),
        Value::U16(x) => w.write_all(&x.to_le_bytes()),
        Value::I16(x) => w.write_all(&x.to_le_bytes()),
        Value::U32(x) => w.write_all(&x.to_le_bytes()),
        Value::I32(x) => w.write_all(&x.to_le_bytes()),
        Value::F32(x) => w.write_all(&x.to_le_bytes()),
        Value::Bool(x) => w.write_all(&[u8::from(*x)]),
        Value::String(s) => put_str(w, s),
        Value::Array(ty, items) => {
            put_array_head(w, *ty, items.len())?;
            items.iter().try_for_each(|item| put_value(w, item))
        }
        Value::Packed(a) => put_array(w, a),
        Value::U64(x) => w.write_all(&x.to_le_bytes()),
        Value::I64(x) => w.write_all(&x.to_le_bytes()),
        Value::F64(x) => w.write_all(&x.to_le_bytes()),
    }
}

/// An array's element type and length.
fn put_array_head(w: &mut impl Write, ty: ValueType, len: usize) -> io::Result<()> {
    w.write_all(&ty.id().to_le_bytes())?;
    w.write_all(&(len as u64).to_le_bytes())
}

fn put_array(w: &mut impl Write, a: &Array) -> io::Result<()> {
    put_array_head(w, a.item_type(), a.len())?;
    macro_rules! le {
        ($v:expr) => {
            $v.iter().try_for_each(|x| w.write_all(&x.to_le_bytes()))
        };
    }
    match a {
        Array::U8(v) => w.write_all(v),
        Array::I8(v) => le!(v),
        Array::U16(v) => le!(v),
        Array::I16(v) => le!(v),
        Array::U32(v) => le!(v),
        Array::I32(v) => le!(v),
        Array::F32(v) => le!(v),
        Array::U64(v) => le!(v),
        Array::I64(v) => le!(v),
        Array::F64(v) => le!(v),
        Array::Bool(v) => v.iter().try_for_each(|&x| w.write_all(&[u8::from(x)])),
        Array::String(v) => v.iter().try_for_each(|s| put_str(w, s)),
        Array::Array(v) => v.iter().try_for_each(|inner| put_array(w, inner)),
    }
}
