//! The GGUF header parser: bytes in, a checked [`Header`] out, or an error that
//! names the field, key or tensor and the byte offset.
//!
//! Every count read from the file (keys, tensors, array elements, string bytes)
//! is checked against the bytes left before anything is allocated for it, every
//! size and offset sum is `checked_*`, nesting is bounded, and the work done is
//! linear in the file size (plus a sort of the tensors), so no input can make
//! the parser panic, allocate without bound, or take long.

use std::collections::HashMap;

use super::value::{Array, Value, ValueType};
use super::{TensorInfo, DEFAULT_ALIGNMENT, MAX_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS};
use crate::error::{Error, Result};
use crate::types::GgmlType;

/// The magic at byte 0 of every GGUF file.
pub const MAGIC: &[u8; 4] = b"GGUF";

/// Key, value type, and at least one byte of value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Name length, n_dims, one dimension, type and offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;

/// What the header says, checked.
pub(super) struct Header {
    pub version: u32,
    pub alignment: u64,
    pub data_offset: u64,
    pub metadata: Vec<(String, Value)>,
    pub key_index: HashMap<String, usize>,
    pub tensors: Vec<TensorInfo>,
    pub tensor_index: HashMap<String, usize>,
}

/// A position in the file being parsed.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn at(&self) -> u64 {
        self.pos as u64
    }

    fn left(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    /// The next `n` bytes, or an error saying `what` they were to be.
    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8]> {
        if n > self.left() {
            return Err(Error::gguf(
                self.at(),
                format!(
                    "{}: needs {n} bytes but the file ends after {} (file truncated?)",
                    what(),
                    self.left()
                ),
            ));
        }
        let start = self.pos;
        // n <= left <= usize::MAX, so the cast and the sum are exact.
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: impl FnOnce() -> String) -> Result<[u8; N]> {
        let b = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A length-prefixed string's raw bytes; the length is checked against the
    /// bytes left before the bytes are taken.
    fn string_bytes(&mut self, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        let at = self.at();
        let len = self.u64(|| format!("{}: length", what()))?;
        if len > self.left() {
            return Err(Error::gguf(
                at,
                format!(
                    "{}: string length {len} runs past the end of the file ({} bytes left)",
                    what(),
                    self.left()
                ),
            ));
        }
        self.take(len, what)
    }

    /// A string that must be valid UTF-8 (keys and tensor names).
    fn strict_string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let at = self.at() + 8;
        let bytes = self.string_bytes(what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => Err(Error::gguf(
                at,
                format!(
                    "{} is not valid UTF-8 (invalid byte at {} of its {} bytes)",
                    what(),
                    e.valid_up_to(),
                    bytes.len()
                ),
            )),
        }
    }
}

/// Parses and checks the header of a GGUF file held whole in `buf`.
pub(super) fn parse(buf: &[u8]) -> Result<Header> {
    let mut r = Cursor { buf, pos: 0 };
    let file_len = buf.len() as u64;

    if buf.len() < 4 {
        return Err(Error::gguf(
            0,
            format!("magic: the file is {file_len} bytes, too short to be GGUF"),
        ));
    }
    let magic = r.array::<4>(|| "magic".into())?;
    if &magic != MAGIC {
        return Err(Error::gguf(
            0,
            format!(
                "magic: bad magic {:?}, expected \"GGUF\": not a GGUF file",
                String::from_utf8_lossy(&magic)
            ),
        ));
    }
    let version = r.u32(|| "version".into())?;
    check_version(version)?;

    let n_tensors = r.u64(|| "tensor count".into())?;
    let n_kv = r.u64(|| "key-value count".into())?;
    check_counts(r.left(), n_kv, n_tensors)?;

    // The counts are now known to be below the file size over the smallest
    // entry, so reserving for them is bounded by the file size.
    let mut metadata = Vec::with_capacity(n_kv as usize);
    let mut key_index = HashMap::with_capacity(n_kv as usize);
    let mut alignment_at = None;
    for i in 0..n_kv {
        let key_at = r.at();
        let key = r.strict_string(&|| format!("key #{i}: name"))?;
        if let Some(&j) = key_index.get(&key) {
            return Err(Error::gguf(
                key_at,
                format!("duplicate key '{key}' (key #{i}, first defined as key #{j})"),
            ));
        }
        let ty_at = r.at();
        let ty_id = r.u32(|| format!("key '{key}': value type"))?;
        let ty = ValueType::from_id(ty_id).ok_or_else(|| {
            Error::gguf(
                ty_at,
                format!("key '{key}': unknown value type id {ty_id} (valid: 0..=12)"),
            )
        })?;
        if key == "general.alignment" {
            alignment_at = Some(r.at());
        }
        let value = read_value(&mut r, ty, &key, 0)?;
        key_index.insert(key.clone(), metadata.len());
        metadata.push((key, value));
    }

    let alignment = match (alignment_at, key_index.get("general.alignment")) {
        (Some(at), Some(&i)) => check_alignment(&metadata[i].1, at)?,
        _ => DEFAULT_ALIGNMENT,
    };

    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut tensor_index = HashMap::with_capacity(n_tensors as usize);
    // Where each tensor's offset field is, for the errors found after the header.
    let mut offset_fields = Vec::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let name_at = r.at();
        let name = r.strict_string(&|| format!("tensor #{i}: name"))?;
        if let Some(&j) = tensor_index.get(&name) {
            return Err(Error::gguf(
                name_at,
                format!(
                    "duplicate tensor name '{name}' (tensor #{i}, first defined as tensor #{j})"
                ),
            ));
        }
        let (info, offset_at) = read_tensor_info(&mut r, name, alignment)?;
        tensor_index.insert(info.name.clone(), tensors.len());
        tensors.push(info);
        offset_fields.push(offset_at);
    }

    let header_end = r.at();
    let data_offset = align_up(header_end, alignment).ok_or_else(|| {
        Error::gguf(
            header_end,
            "data section: its aligned start overflows 64 bits",
        )
    })?;
    for (t, &at) in tensors.iter_mut().zip(&offset_fields) {
        place_tensor(t, at, data_offset, file_len)?;
    }
    check_overlaps(&tensors, &offset_fields)?;

    Ok(Header {
        version,
        alignment,
        data_offset,
        metadata,
        key_index,
        tensors,
        tensor_index,
    })
}

fn check_version(version: u32) -> Result<()> {
    match version {
        2 | 3 => Ok(()),
        1 => Err(Error::gguf(
            4,
            "version: GGUF version 1 is not supported (it used 32-bit counts and lengths; \
             re-convert the model with a current llama.cpp or gguf-py)",
        )),
        // A big-endian file stores the version byte-swapped: 3 reads as 0x03000000.
        v if (1..=3).contains(&v.swap_bytes()) => Err(Error::gguf(
            4,
            format!(
                "version: big-endian GGUF (the version reads {v:#x} little-endian, {} byte-swapped): \
                 only little-endian files are supported",
                v.swap_bytes()
            ),
        )),
        v => Err(Error::gguf(
            4,
            format!("version: unsupported GGUF version {v} (supported: 2 and 3)"),
        )),
    }
}

/// Refuses counts the rest of the file cannot hold, before anything is reserved
/// for them: each key-value pair and tensor info has a minimum size.
fn check_counts(left: u64, n_kv: u64, n_tensors: u64) -> Result<()> {
    let kv_min = n_kv.checked_mul(MIN_KV_BYTES).filter(|&b| b <= left);
    let Some(kv_min) = kv_min else {
        return Err(Error::gguf(
            16,
            format!(
                "key-value count: {n_kv} pairs cannot fit in the {left} bytes left \
                 (each takes at least {MIN_KV_BYTES})"
            ),
        ));
    };
    if n_tensors
        .checked_mul(MIN_TENSOR_INFO_BYTES)
        .is_none_or(|b| b > left - kv_min)
    {
        return Err(Error::gguf(
            8,
            format!(
                "tensor count: {n_tensors} tensor infos cannot fit in the {} bytes left after \
                 the smallest {n_kv} key-value pairs (each takes at least {MIN_TENSOR_INFO_BYTES})",
                left - kv_min
            ),
        ));
    }
    Ok(())
}

/// Reads one value of type `ty`, nested `depth` arrays deep, for key `key`.
fn read_value(r: &mut Cursor<'_>, ty: ValueType, key: &str, depth: usize) -> Result<Value> {
    let what = || format!("key '{key}': {ty} value");
    Ok(match ty {
        ValueType::U8 => Value::U8(r.array::<1>(what)?[0]),
        ValueType::I8 => Value::I8(r.array::<1>(what)?[0] as i8),
        ValueType::U16 => Value::U16(u16::from_le_bytes(r.array(what)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(r.array(what)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(r.array(what)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(r.array(what)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(r.array(what)?)),
        ValueType::U64 => Value::U64(u64::from_le_bytes(r.array(what)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(r.array(what)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(r.array(what)?)),
        ValueType::Bool => {
            let at = r.at();
            match r.array::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(Error::gguf(
                        at,
                        format!("key '{key}': bool value {b} is neither 0 nor 1"),
                    ))
                }
            }
        }
        ValueType::String => Value::String(read_string_value(r, &what)?),
        ValueType::Array => Value::Packed(read_array(r, key, depth)?),
    })
}

/// Reads an array (its element type, length and elements), nested `depth`
/// arrays deep.
fn read_array(r: &mut Cursor<'_>, key: &str, depth: usize) -> Result<Array> {
    let at = r.at();
    if depth >= MAX_ARRAY_DEPTH {
        return Err(Error::gguf(
            at,
            format!("key '{key}': arrays nested more than {MAX_ARRAY_DEPTH} deep"),
        ));
    }
    let ty_id = r.u32(|| format!("key '{key}': array element type"))?;
    let ty = ValueType::from_id(ty_id).ok_or_else(|| {
        Error::gguf(
            at,
            format!("key '{key}': unknown array element type id {ty_id} (valid: 0..=12)"),
        )
    })?;
    let len_at = r.at();
    let len = r.u64(|| format!("key '{key}': array length"))?;
    if len.checked_mul(ty.min_size()).is_none_or(|b| b > r.left()) {
        return Err(Error::gguf(
            len_at,
            format!(
                "key '{key}': array length {len} runs past the end of the file \
                 ({} bytes left, each {ty} element takes at least {})",
                r.left(),
                ty.min_size()
            ),
        ));
    }
    // Bounded by the bytes left, checked above: for fixed-size elements
    // len * size bytes are there, and strings and arrays take 24 and 32 bytes
    // in memory for at least 8 and 12 in the file.
    let n = len as usize;
    let what = || format!("key '{key}': {ty} value");
    // Exact (checked above) for the fixed-size types, whose min_size is their size.
    let size = len * ty.min_size();
    Ok(match ty {
        ValueType::U8 => Array::U8(r.take(size, what)?.to_vec()),
        ValueType::I8 => Array::I8(r.take(size, what)?.iter().map(|&b| b as i8).collect()),
        ValueType::U16 => Array::U16(le_items(r.take(size, what)?, u16::from_le_bytes)),
        ValueType::I16 => Array::I16(le_items(r.take(size, what)?, i16::from_le_bytes)),
        ValueType::U32 => Array::U32(le_items(r.take(size, what)?, u32::from_le_bytes)),
        ValueType::I32 => Array::I32(le_items(r.take(size, what)?, i32::from_le_bytes)),
        ValueType::F32 => Array::F32(le_items(r.take(size, what)?, f32::from_le_bytes)),
        ValueType::U64 => Array::U64(le_items(r.take(size, what)?, u64::from_le_bytes)),
        ValueType::I64 => Array::I64(le_items(r.take(size, what)?, i64::from_le_bytes)),
        ValueType::F64 => Array::F64(le_items(r.take(size, what)?, f64::from_le_bytes)),
        ValueType::Bool => {
            let start = r.at();
            let bytes = r.take(size, what)?;
            if let Some(i) = bytes.iter().position(|&b| b > 1) {
                return Err(Error::gguf(
                    start + i as u64,
                    format!("key '{key}': bool value {} is neither 0 nor 1", bytes[i]),
                ));
            }
            Array::Bool(bytes.iter().map(|&b| b == 1).collect())
        }
        ValueType::String => {
            let mut items = Vec::with_capacity(n);
            for _ in 0..len {
                items.push(read_string_value(r, &what)?);
            }
            Array::String(items)
        }
        ValueType::Array => {
            let mut items = Vec::with_capacity(n);
            for _ in 0..len {
                items.push(read_array(r, key, depth + 1)?);
            }
            Array::Array(items)
        }
    })
}

/// A string value. String values are not names: one odd token must not make a
/// whole model unreadable, so invalid UTF-8 is replaced (U+FFFD) rather than
/// refused.
fn read_string_value(r: &mut Cursor<'_>, what: &dyn Fn() -> String) -> Result<String> {
    Ok(match String::from_utf8_lossy(r.string_bytes(what)?) {
        std::borrow::Cow::Borrowed(s) => s.to_owned(),
        // no spare capacity: the module documentation's bound
        std::borrow::Cow::Owned(mut s) => {
            s.shrink_to_fit();
            s
        }
    })
}

/// Little-endian elements of `N` bytes each (`bytes` holds a whole number of them).
fn le_items<T, const N: usize>(bytes: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    bytes.as_chunks::<N>().0.iter().map(|&c| f(c)).collect()
}

fn check_alignment(v: &Value, at: u64) -> Result<u64> {
    let Value::U32(a) = *v else {
        return Err(Error::gguf(
            at,
            format!(
                "key 'general.alignment': must be a u32, found {} {v}",
                v.type_name()
            ),
        ));
    };
    let a = u64::from(a);
    if a == 0 || !a.is_power_of_two() || a > MAX_ALIGNMENT {
        return Err(Error::gguf(
            at,
            format!(
                "key 'general.alignment': {a} is not a power of two between 1 and {MAX_ALIGNMENT}"
            ),
        ));
    }
    Ok(a)
}

/// Reads the rest of a tensor info after its name; returns it (offset still
/// relative to the data section) and where its offset field is.
fn read_tensor_info(r: &mut Cursor<'_>, name: String, alignment: u64) -> Result<(TensorInfo, u64)> {
    let dims_at = r.at();
    let n_dims = r.u32(|| format!("tensor '{name}': n_dims"))?;
    if !(1..=MAX_DIMS).contains(&n_dims) {
        return Err(Error::gguf(
            dims_at,
            format!("tensor '{name}': n_dims {n_dims} is out of range 1..={MAX_DIMS}"),
        ));
    }
    let mut ne = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        let at = r.at();
        let n = r.u64(|| format!("tensor '{name}': ne[{d}]"))?;
        // ggml holds dimensions as int64_t.
        if n > i64::MAX as u64 {
            return Err(Error::gguf(
                at,
                format!("tensor '{name}': ne[{d}] = {n} exceeds 2^63-1"),
            ));
        }
        ne.push(n);
    }
    let ty_at = r.at();
    let ty_id = r.u32(|| format!("tensor '{name}': type"))?;
    let ty = GgmlType::from_id(ty_id).ok_or_else(|| {
        Error::gguf(
            ty_at,
            format!("tensor '{name}': unknown or removed ggml type id {ty_id}"),
        )
    })?;
    let offset_at = r.at();
    let offset = r.u64(|| format!("tensor '{name}': offset"))?;

    let n_elems = super::element_count(&ne).ok_or_else(|| {
        Error::gguf(
            dims_at,
            format!(
                "tensor '{name}': element count of ne {ne:?} overflows 2^63-1 \
                 (a zero dimension aside)"
            ),
        )
    })?;
    let qk = ty.block_elems() as u64;
    if ne[0] % qk != 0 {
        return Err(Error::gguf(
            dims_at + 4,
            format!(
                "tensor '{name}': row length ne[0] = {} is not a multiple of the {ty} block size {qk}",
                ne[0]
            ),
        ));
    }
    let nbytes = super::byte_count(ty, &ne).ok_or_else(|| {
        let what = match n_elems {
            0 => format!("ne {ne:?} (a zero dimension aside)"),
            n => format!("{n} {ty} elements"),
        };
        Error::gguf(
            dims_at,
            format!("tensor '{name}': byte size of {what} overflows 64 bits"),
        )
    })?;
    if offset % alignment != 0 {
        return Err(Error::gguf(
            offset_at,
            format!(
                "tensor '{name}': offset {offset} is not a multiple of the alignment {alignment}"
            ),
        ));
    }
    let info = TensorInfo {
        name,
        ty,
        ne,
        offset,
        nbytes,
        n_elems,
    };
    Ok((info, offset_at))
}

/// Makes the tensor's offset absolute and checks its bytes lie inside the file.
fn place_tensor(t: &mut TensorInfo, at: u64, data_offset: u64, file_len: u64) -> Result<()> {
    let start = data_offset.checked_add(t.offset).ok_or_else(|| {
        Error::gguf(
            at,
            format!(
                "tensor '{}': offset {} plus the data section start {data_offset} overflows 64 bits",
                t.name, t.offset
            ),
        )
    })?;
    let end = start.checked_add(t.nbytes).ok_or_else(|| {
        Error::gguf(
            at,
            format!(
                "tensor '{}': offset {start} + size {} overflows 64 bits",
                t.name, t.nbytes
            ),
        )
    })?;
    if end > file_len {
        return Err(Error::gguf(
            at,
            format!(
                "tensor '{}': data [{start}, {end}) extends past the end of the file ({file_len} bytes)",
                t.name
            ),
        ));
    }
    t.offset = start;
    Ok(())
}

/// Refuses tensors whose bytes overlap (empty tensors overlap nothing).
fn check_overlaps(tensors: &[TensorInfo], offset_fields: &[u64]) -> Result<()> {
    let mut order: Vec<usize> = (0..tensors.len())
        .filter(|&i| tensors[i].nbytes > 0)
        .collect();
    order.sort_by_key(|&i| (tensors[i].offset, tensors[i].nbytes));
    // The tensor reaching furthest so far: any later start below its end overlaps it.
    let mut furthest: Option<usize> = None;
    for i in order {
        let t = &tensors[i];
        if let Some(p) = furthest {
            let prev = &tensors[p];
            let prev_end = prev.offset + prev.nbytes;
            if t.offset < prev_end {
                return Err(Error::gguf(
                    offset_fields[i],
                    format!(
                        "tensors '{}' [{}, {}) and '{}' [{}, {prev_end}) overlap",
                        t.name,
                        t.offset,
                        t.offset + t.nbytes,
                        prev.name,
                        prev.offset
                    ),
                ));
            }
        }
        if furthest.is_none_or(|p| t.offset + t.nbytes > tensors[p].offset + tensors[p].nbytes) {
            furthest = Some(i);
        }
    }
    Ok(())
}

/// `x` rounded up to a multiple of the power of two `a`, if that fits.
pub(super) fn align_up(x: u64, a: u64) -> Option<u64> {
    x.checked_add(a - 1).map(|v| v & !(a - 1))
}
