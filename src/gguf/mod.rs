//! GGUF files: a reader hardened against hostile input, and a writer.
//!
//! # Format (little-endian throughout)
//! `"GGUF"`, version `u32` (2 or 3), tensor count `u64`, key-value count `u64`;
//! the key-value pairs (key: `u64` length + UTF-8 bytes; value type `u32`; the
//! value, arrays as element type `u32` + length `u64` + elements); the tensor
//! infos (name; `n_dims` `u32`; `ne[n_dims]` `u64`, fastest dimension first;
//! ggml type `u32`; offset `u64` relative to the data section); padding to the
//! alignment; the data section.
//!
//! # What the reader checks
//! [`GgufFile`] refuses a file, with an [`Error::Gguf`] naming the field, key or
//! tensor and its byte offset, unless all of the following hold. Nothing in a
//! file can make it panic, overflow the stack, or run longer than linear time
//! (plus a sort of the tensors); memory is bounded by the file's size. Arrays
//! are held packed ([`Array`]): a number or boolean takes its own size, as in
//! the file; a string element takes a 24-byte `String` plus its bytes (at most
//! 3 times as many, where invalid UTF-8 is replaced by U+FFFD) for at least 8
//! bytes in the file; a nested array takes 32 bytes plus its elements for at
//! least 12 in the file. So an array takes at most 3 times its bytes in the
//! file (a numeric one: 1 time). Each key-value pair (at least 13 bytes in the
//! file) takes its [`Value`] (40 bytes), its key twice (in the list and in the
//! index: 48 bytes plus twice the key's bytes) and an index entry (8 bytes plus
//! the table's overhead); nothing else is allocated per byte.
//! - Magic `GGUF`; version 2 or 3. Version 1 is refused with its reason; a
//!   big-endian file (its version reads byte-swapped as 0x0N000000) is recognized
//!   and refused as such.
//! - Every count (keys, tensors, array elements, string bytes) is checked against
//!   the bytes left in the file, times the smallest size of one item, before any
//!   memory is reserved for it.
//! - Keys and tensor names are valid UTF-8; string *values* with invalid UTF-8 are
//!   kept with U+FFFD replacements (one odd token must not make a model unreadable).
//!   Booleans are 0 or 1. No key and no tensor name appears twice.
//! - Arrays nest at most [`MAX_ARRAY_DEPTH`] deep (ggml refuses nested arrays
//!   entirely; gguf-py can write them).
//! - `general.alignment`, when present, is a `u32` power of two no larger than
//!   [`MAX_ALIGNMENT`] (1 MiB: far above any real use, small enough that padding
//!   cannot be used to push offsets around); otherwise [`DEFAULT_ALIGNMENT`].
//! - Each tensor: `n_dims` in 1..=4; each `ne` at most 2^63-1 (ggml's `int64_t`),
//!   zero allowed, as in ggml (the tensor is then empty); the element count fits
//!   in 2^63-1; the type id is one ggml defines ([`GgmlType::from_id`]; removed
//!   ids are refused, types without a dequantizer are accepted: refusing to
//!   decode them is the decoder's job); `ne[0]` is a whole number of blocks; the
//!   byte size, offset sums and padding are computed with checked arithmetic; the
//!   relative offset is a multiple of the alignment; the bytes lie inside the
//!   file; no two tensors' bytes overlap. (Unlike ggml, tensors need not be
//!   packed in file order.)
//!
//! # Files that change while mapped
//! [`GgufFile::open`] maps the file. If another process truncates it afterwards,
//! touching the lost pages would raise SIGBUS and kill the process. The reader
//! cannot fully prevent that, but narrows it: [`GgufFile::tensor_data`] first
//! re-reads the file's length (`fstat` on the open descriptor) and returns an
//! error rather than a slice over bytes the file no longer has. The window between
//! that check and the caller's reads remains, and a file rewritten in place (same
//! length, new bytes) shows the new bytes. Where the file may be changed by
//! someone else during use, open it with [`OpenOptions`]`{ mmap: false }`, which
//! reads it into memory once: later changes to the file then cannot affect it.

mod reader;
mod value;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use memmap2::Mmap;

pub use reader::MAGIC;
pub use value::{Array, Value, ValueType};
pub(crate) use writer::no_deferred;
pub use writer::{FillTensor, GgufWriter, TensorBytes};

use crate::error::{Error, Result};
use crate::types::GgmlType;

/// The alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The largest `general.alignment` accepted: 1 MiB.
pub const MAX_ALIGNMENT: u64 = 1 << 20;
/// The deepest nesting of arrays accepted (an array of arrays is depth 2).
pub const MAX_ARRAY_DEPTH: usize = 8;
/// Tensors have 1 to `MAX_DIMS` dimensions (`GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;

/// One tensor as the file describes it, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name, unique in the file.
    pub name: String,
    /// The tensor's storage type.
    pub ty: GgmlType,
    /// Dimensions in ggml order, fastest first; 1 to 4 of them.
    pub ne: Vec<u64>,
    /// Absolute byte offset of the data in the file.
    pub offset: u64,
    /// Bytes of data: `ty.bytes_for(n_elems)`.
    pub nbytes: u64,
    /// Elements: the product of `ne`.
    pub n_elems: u64,
}

impl TensorInfo {
    /// `Ok` if this crate decodes the tensor's type, else
    /// [`Error::Unsupported`] naming the tensor and its type: the check every
    /// job makes before it allocates or moves anything (never zeros for a
    /// type it cannot decode).
    pub fn check_decodable(&self) -> Result<()> {
        if self.ty.is_dequantizable() {
            Ok(())
        } else {
            Err(Error::Unsupported {
                tensor: Some(self.name.clone()),
                ty: self.ty,
            })
        }
    }

    /// The shape in row-major (numpy) order: `ne` reversed.
    pub fn shape_row_major(&self) -> Vec<u64> {
        self.ne.iter().rev().copied().collect()
    }
}

/// How to open a file.
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    /// Map the file (the default) rather than read it into memory. See the
    /// module documentation for what mapping means if the file later shrinks.
    pub mmap: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { mmap: true }
    }
}

enum Bytes {
    /// The mapping and the descriptor it came from, kept for `fstat`.
    Mapped {
        map: Mmap,
        file: File,
    },
    Owned(Vec<u8>),
}

/// A parsed, checked GGUF file and its bytes (mapped or in memory).
pub struct GgufFile {
    bytes: Bytes,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    /// The file it was read from (device, inode), if any.
    source: Option<FileIdentity>,
}

/// A file's identity: device and inode (a path can come to name another file;
/// this cannot).
pub type FileIdentity = (u64, u64);

/// The identity of an open file.
pub fn file_identity(file: &std::fs::File) -> Option<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    file.metadata().ok().map(|m| (m.dev(), m.ino()))
}

impl GgufFile {
    /// Opens and maps a file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Opens a file, mapped or read as `opts` says. Only regular files are
    /// read: a FIFO, a device or a directory is refused at once (opened
    /// without blocking), and never more than the file's size is read.
    pub fn open_with(path: impl AsRef<Path>, opts: OpenOptions) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = path.as_ref();
        let ctx = |what: &str| format!("{what} {}", path.display());
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| Error::io(ctx("opening"), e))?;
        let meta = file.metadata().map_err(|e| Error::io(ctx("stat of"), e))?;
        if !meta.is_file() {
            return Err(Error::io(
                ctx("reading"),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a regular file (a GGUF file is read from a regular file only)",
                ),
            ));
        }
        let source = file_identity(&file);
        if !opts.mmap {
            let mut buf = Vec::new();
            (&file)
                .take(meta.len())
                .read_to_end(&mut buf)
                .map_err(|e| Error::io(ctx("reading"), e))?;
            let mut f = Self::from_bytes(buf)?;
            f.source = source;
            return Ok(f);
        }
        if meta.len() == 0 {
            // Empty mappings are an error on some systems; the parser says why it is invalid.
            return Self::from_bytes(Vec::new());
        }
        // SAFETY: the mapping is read-only and private to this process. Another
        // process may still change or truncate the file; `tensor_data` re-checks
        // the length and the module documentation states what remains.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(ctx("mapping"), e))?;
        let mut f = Self::from_storage(Bytes::Mapped { map, file })?;
        f.source = source;
        Ok(f)
    }

    /// Parses a file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_storage(Bytes::Owned(bytes))
    }

    fn from_storage(bytes: Bytes) -> Result<Self> {
        let h = reader::parse(match &bytes {
            Bytes::Mapped { map, .. } => map,
            Bytes::Owned(v) => v,
        })?;
        Ok(GgufFile {
            bytes,
            version: h.version,
            alignment: h.alignment,
            data_offset: h.data_offset,
            metadata: h.metadata,
            key_index: h.key_index,
            tensors: h.tensors,
            tensor_index: h.tensor_index,
            source: None,
        })
    }

    /// The file this was read from, as (device, inode): outputs must not be it.
    pub fn source_identity(&self) -> Option<FileIdentity> {
        self.source
    }

    /// The whole file as it was when opened.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped { map, .. } => map,
            Bytes::Owned(v) => v,
        }
    }

    /// Whether the file is memory-mapped (else read into memory).
    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, Bytes::Mapped { .. })
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The alignment of tensor data (`general.alignment`, 32 unless set).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute offset of the tensor data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The file's length when it was opened.
    pub fn file_len(&self) -> u64 {
        self.as_bytes().len() as u64
    }

    /// The key-value pairs, in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// The value of metadata key `key`, if the file has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// The tensors, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor named `name`, if the file has it.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// A tensor's bytes, `[t.offset, t.offset + t.nbytes)` of the file. For a
    /// mapped file the file's current length is checked first, so that a file
    /// truncated since it was opened gives an error rather than SIGBUS (see the
    /// module documentation for what this does not cover). A `TensorInfo` from
    /// another file is checked against this one's bounds like any other.
    pub fn tensor_data(&self, t: &TensorInfo) -> Result<&[u8]> {
        let bytes = self.as_bytes();
        let range = t
            .offset
            .checked_add(t.nbytes)
            .filter(|&end| end <= bytes.len() as u64)
            .map(|end| t.offset as usize..end as usize)
            .ok_or_else(|| {
                Error::gguf(
                    t.offset,
                    format!(
                        "tensor '{}': data at {} ({} bytes) is outside the file ({} bytes)",
                        t.name,
                        t.offset,
                        t.nbytes,
                        bytes.len()
                    ),
                )
            })?;
        if let Bytes::Mapped { file, .. } = &self.bytes {
            let now = file
                .metadata()
                .map_err(|e| Error::io(format!("stat of the file of tensor '{}'", t.name), e))?
                .len();
            if (range.end as u64) > now {
                return Err(Error::gguf(
                    t.offset,
                    format!(
                        "tensor '{}': the file shrank to {now} bytes since it was opened, \
                         and its data [{}, {}) is no longer there",
                        t.name, range.start, range.end
                    ),
                ));
            }
        }
        Ok(&bytes[range])
    }

    /// All of tensor `t`'s data, read as [`GgufFile::read_tensor`] reads it
    /// (an error, not an abort, where memory cannot hold it).
    pub fn read_tensor_all(&self, t: &TensorInfo) -> Result<Vec<u8>> {
        let mut buf = crate::alloc::try_vec(t.nbytes).ok_or_else(|| {
            Error::Length(format!(
                "tensor '{}': {} bytes do not fit in memory",
                t.name, t.nbytes
            ))
        })?;
        self.read_tensor(t, 0, &mut buf)?;
        Ok(buf)
    }

    /// Reads `buf.len()` bytes of tensor `t`'s data, from byte `at` of it.
    /// From a mapped file the bytes are read from the file itself (`pread`),
    /// not through the mapping: a file that shrinks or changes at any moment
    /// then gives an error naming the tensor and the offset, never SIGBUS.
    /// This is how the commands read tensors; it costs one copy of the
    /// compressed bytes, a fraction of the decoded ones.
    pub fn read_tensor(&self, t: &TensorInfo, at: u64, buf: &mut [u8]) -> Result<()> {
        let end = at.checked_add(buf.len() as u64).filter(|&e| e <= t.nbytes);
        let Some(start) = end.and_then(|_| t.offset.checked_add(at)) else {
            return Err(Error::Length(format!(
                "tensor '{}': {} bytes at {at} are past its {} bytes",
                t.name,
                buf.len(),
                t.nbytes
            )));
        };
        match &self.bytes {
            Bytes::Owned(v) => {
                let src = usize::try_from(start)
                    .ok()
                    .and_then(|s| v.get(s..s.checked_add(buf.len())?))
                    .ok_or_else(|| {
                        Error::gguf(start, format!("tensor '{}': data outside the file", t.name))
                    })?;
                buf.copy_from_slice(src);
                Ok(())
            }
            Bytes::Mapped { file, .. } => {
                use std::os::unix::fs::FileExt;
                file.read_exact_at(buf, start).map_err(|e| {
                    let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        "the file is shorter than when it was opened".to_string()
                    } else {
                        e.to_string()
                    };
                    Error::gguf(
                        start,
                        format!(
                            "tensor '{}': reading {} bytes at {start}: {why}",
                            t.name,
                            buf.len()
                        ),
                    )
                })
            }
        }
    }
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("file_len", &self.file_len())
            .field("mapped", &self.is_mapped())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .field("n_kv", &self.metadata.len())
            .field("n_tensors", &self.tensors.len())
            .finish()
    }
}

/// The product of the dimensions, a zero aside, where ggml can hold it (at
/// most 2^63-1). An empty tensor's other dimensions are bounded too: they
/// are multiplied all the same (into its rows and row bytes, or the shapes
/// handed to numpy, torch or candle), and every part of the product must fit.
fn nonzero_product(ne: &[u64]) -> Option<u64> {
    ne.iter()
        .filter(|&&n| n != 0)
        .try_fold(1u64, |acc, &n| acc.checked_mul(n))
        .filter(|&n| n <= i64::MAX as u64)
}

/// The element count of a tensor of dimensions `ne`, where its dimensions
/// are within [`nonzero_product`]'s bound.
pub(crate) fn element_count(ne: &[u64]) -> Option<u64> {
    let nonzero = nonzero_product(ne)?;
    Some(if ne.contains(&0) { 0 } else { nonzero })
}

/// The byte size of a `ty` tensor of dimensions `ne` (`ne[0]` a multiple of
/// the block size), where the bytes of every part of it fit 64 bits: an
/// empty tensor's rows (`ne = [2^62, 0]` of f32: no bytes, but 2^64 in a
/// row) are bounded as a whole tensor's are.
pub(crate) fn byte_count(ty: GgmlType, ne: &[u64]) -> Option<u64> {
    // the blocks of the dimensions a zero aside: a non-empty tensor's own
    // (`ne[0]` being whole blocks), an empty one's bound
    let (qk, bb) = (ty.block_elems() as u64, ty.block_bytes() as u64);
    let bytes = nonzero_product(ne)?.div_ceil(qk).checked_mul(bb)?;
    Some(if ne.contains(&0) { 0 } else { bytes })
}

#[cfg(test)]
mod tests;
