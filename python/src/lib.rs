//! `gguf_dequant._native`: the Rust half of the Python package `gguf_dequant`.
//!
//! The pure-Python modules (`python/python/gguf_dequant/`) are the public
//! API; this module gives them a GGUF file (`GGUFFile`: metadata, tensor
//! infos, zero-copy raw blocks, decoding of whole tensors or shards), a
//! decoder of raw blocks (`dequantize`) and the tensor-parallel rule
//! (`tp_shard`). Decoded values come back as numpy arrays that own the
//! buffer Rust decoded into (no copy): `float32` arrays, or `uint16` arrays
//! holding f16 or bf16 bits, which the Python side views as its dtype.
//!
//! Every decode runs with the GIL released, on the crate's CPU fast path, in
//! pieces: Ctrl-C is noticed between two of them (`KeyboardInterrupt`).
//! Errors are Python exceptions carrying the crate's messages: `OSError` for
//! I/O, `MemoryError` for a CUDA device out of memory (as numpy's
//! allocations raise it), `gguf_dequant.GGUFError` (a `ValueError`) for
//! everything else the crate reports; a panic, which would be a bug, is caught and raised as a
//! `GGUFError` too, never unwinding into the interpreter.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "cuda")]
mod cuda;

use std::any::Any;
use std::ffi::OsString;
use std::ops::Range;
use std::os::unix::ffi::OsStringExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use gguf_dequant::gguf::{Array, GgufFile, OpenOptions, TensorInfo, Value};
use gguf_dequant::shard::{self, Shard, Split};
use gguf_dequant::types::{UnknownDtype, TYPES};
use gguf_dequant::{cpu, with_out_elem, CudaErrorKind, Error, GgmlType, OutElem, OutType};
use numpy::ndarray::{ArrayView1, IxDyn};
use numpy::{PyArray, PyArray1, PyArrayDyn, PyArrayMethods, PyReadonlyArray1, PyReadonlyArrayDyn};
use pyo3::exceptions::{PyMemoryError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyList, PyString};

pyo3::create_exception!(
    gguf_dequant,
    GGUFError,
    PyValueError,
    "An error gguf-dequant reports: a malformed GGUF file (with the byte offset), \
     a type that cannot be decoded, lengths that do not fit the type, an unknown \
     tensor, an invalid shard. I/O errors are OSError instead."
);

/// The crate's error as a Python exception.
fn py_err(e: Error) -> PyErr {
    let message = e.to_string();
    match &e {
        Error::Io { source, .. } => match source.raw_os_error() {
            // OSError(errno, message) picks the subclass (FileNotFoundError, ...)
            Some(code) => PyOSError::new_err((code, message)),
            None => PyOSError::new_err(message),
        },
        // What an engine frees memory for and retries (torch raises its
        // OutOfMemoryError, numpy MemoryError): not a problem of the file.
        Error::Cuda(c) if c.kind() == CudaErrorKind::OutOfMemory => PyMemoryError::new_err(message),
        _ => GGUFError::new_err(message),
    }
}

/// `Result<T, Error>` into `PyResult<T>`.
trait OrRaise<T> {
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, Error> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(py_err)
    }
}

/// Runs `f`, turning a panic (a bug) into an error instead of unwinding
/// through the interpreter.
fn guarded<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p: Box<dyn Any + Send>| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string());
        Err(Error::Invalid(format!(
            "internal error in gguf-dequant (please report it): {what}"
        )))
    })
}

/// The output type of a dtype name, by the crate's one parser of them
/// (`OutType`'s `FromStr`: its `NAMES`, in any case); a `ValueError` naming
/// them for any other.
fn out_type(dtype: &str) -> PyResult<OutType> {
    dtype
        .parse()
        .map_err(|e: UnknownDtype| PyValueError::new_err(e.to_string()))
}

/// A ggml type given by name (`"q4_K"`, any case) or by id (`12`).
fn ggml_type(ob: &Bound<'_, PyAny>) -> PyResult<GgmlType> {
    if let Ok(name) = ob.cast::<PyString>() {
        // lossy: a name that is not valid Unicode names no type either
        let name = name.to_string_lossy();
        return GgmlType::from_name(&name)
            .ok_or_else(|| PyValueError::new_err(format!("unknown ggml type {name:?}")));
    }
    // (True is an int to Python, but no type's id)
    if ob.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(
            "ggml_type must be a type name or id, not a bool",
        ));
    }
    if let Ok(id) = ob.extract::<i64>() {
        return u32::try_from(id)
            .ok()
            .and_then(GgmlType::from_id)
            .ok_or_else(|| PyValueError::new_err(format!("unknown ggml type id {id}")));
    }
    if ob.is_instance_of::<PyInt>() {
        return Err(PyValueError::new_err(format!("unknown ggml type id {ob}")));
    }
    Err(PyTypeError::new_err(
        "ggml_type must be a type name such as \"q4_K\" or a type id such as 12",
    ))
}

/// Decoded values: f32, or the bits of f16 or bf16.
enum Decoded {
    F32(Vec<f32>),
    U16(Vec<u16>),
}

impl From<Vec<f32>> for Decoded {
    fn from(v: Vec<f32>) -> Self {
        Decoded::F32(v)
    }
}

impl From<Vec<half::f16>> for Decoded {
    fn from(v: Vec<half::f16>) -> Self {
        Decoded::U16(bytemuck::allocation::cast_vec(v))
    }
}

impl From<Vec<half::bf16>> for Decoded {
    fn from(v: Vec<half::bf16>) -> Self {
        Decoded::U16(bytemuck::allocation::cast_vec(v))
    }
}

/// `n` zeroed values, or an error where memory cannot hold them (never an
/// abort). Zeroed memory comes from the allocator as such (no pass over it).
fn zeroed<T: bytemuck::Zeroable>(n: u64, what: &str) -> Result<Vec<T>, Error> {
    usize::try_from(n)
        .ok()
        .and_then(|n| bytemuck::allocation::try_zeroed_slice_box::<T>(n).ok())
        .map(|b| b.into_vec())
        .ok_or_else(|| {
            Error::Length(format!(
                "{what}: {n} values of {} bytes do not fit in memory",
                std::mem::size_of::<T>()
            ))
        })
}

/// Allocates the values of `job` in `out`'s type and decodes them.
fn decode_into(py: Python<'_>, out: OutType, what: &str, job: &impl Job) -> PyResult<Decoded> {
    let n = job.rows() * job.cols();
    with_out_elem!(out, O => {
        let mut v = zeroed::<O>(n, what).or_raise()?;
        run(py, job, &mut v)?;
        Ok(Decoded::from(v))
    })
}

/// Values decoded between two looks for Ctrl-C: 4 Mi (16 MiB of f32), a few
/// milliseconds of work; the GIL is taken back once per piece, which costs
/// nothing next to that.
const PIECE_ELEMS: u64 = 1 << 22;

/// A decode of `rows x cols` values (row-major) that can be run in pieces:
/// whole rows, or a run of whole blocks of one row.
trait Job: Sync {
    fn rows(&self) -> u64;
    fn cols(&self) -> u64;
    /// Elements per block: where a row may be cut.
    fn block_elems(&self) -> u64;
    /// Decodes rows `rows` and, of each, columns `cols` into `out`.
    fn decode<O: OutElem>(
        &self,
        rows: Range<u64>,
        cols: Range<u64>,
        out: &mut [O],
    ) -> Result<(), Error>;
}

/// `job`'s pieces in output order: about [`PIECE_ELEMS`] each, whole rows,
/// or for rows longer than that, runs of whole blocks of one row.
fn pieces(job: &impl Job) -> impl Iterator<Item = (Range<u64>, Range<u64>)> {
    let (rows, cols) = (job.rows(), job.cols());
    let row_pieces = (PIECE_ELEMS / cols.max(1)).max(1);
    let col_piece = (PIECE_ELEMS / job.block_elems()).max(1) * job.block_elems();
    (0..rows).step_by(row_pieces as usize).flat_map(move |r| {
        let r1 = (r + row_pieces).min(rows);
        let col_cuts = if cols > PIECE_ELEMS {
            col_piece
        } else {
            cols.max(1)
        };
        (0..cols)
            .step_by(col_cuts as usize)
            .map(move |c| (r..r1, c..(c + col_cuts).min(cols)))
    })
}

/// Runs `job` into `out` piece by piece, each with the GIL released, looking
/// for signals between pieces: Ctrl-C stops a long decode within a piece.
fn run<O: OutElem>(py: Python<'_>, job: &impl Job, out: &mut [O]) -> PyResult<()> {
    let cols = job.cols();
    for (rows, cs) in pieces(job) {
        let at = (rows.start * cols + cs.start) as usize;
        let n = ((rows.end - rows.start) * (cs.end - cs.start)) as usize;
        let part = &mut out[at..at + n];
        py.detach(|| guarded(|| job.decode(rows, cs, part)))
            .or_raise()?;
        py.check_signals()?;
    }
    Ok(())
}

/// Blocks in memory, of `n` values (one row), written with non-temporal
/// stores or not (`None`: the library's choice, by the output's size).
struct Blocks<'a>(GgmlType, &'a [u8], u64, Option<bool>);

impl Job for Blocks<'_> {
    fn rows(&self) -> u64 {
        1
    }
    fn cols(&self) -> u64 {
        self.2
    }
    fn block_elems(&self) -> u64 {
        self.0.block_elems() as u64
    }
    fn decode<O: OutElem>(
        &self,
        _: Range<u64>,
        cols: Range<u64>,
        out: &mut [O],
    ) -> Result<(), Error> {
        let (qk, bb) = (self.block_elems(), self.0.block_bytes() as u64);
        let src = &self.1[(cols.start / qk * bb) as usize..(cols.end / qk * bb) as usize];
        match self.3 {
            None => cpu::dequantize(self.0, src, out),
            Some(streaming) => {
                cpu::dequantize_with(cpu::Level::best(), streaming, self.0, src, out)
            }
        }
    }
}

/// A shard of a tensor of a file, read with `pread` (never through the
/// mapping: a file that shrinks meanwhile is an error, not SIGBUS).
struct FileShard<'a>(&'a GgufFile, &'a TensorInfo, &'a Shard);

impl Job for FileShard<'_> {
    fn rows(&self) -> u64 {
        self.2.rows.end - self.2.rows.start
    }
    fn cols(&self) -> u64 {
        self.2.cols.end - self.2.cols.start
    }
    fn block_elems(&self) -> u64 {
        self.1.ty.block_elems() as u64
    }
    fn decode<O: OutElem>(
        &self,
        rows: Range<u64>,
        cols: Range<u64>,
        out: &mut [O],
    ) -> Result<(), Error> {
        // a shard of the shard, its columns still at block boundaries
        let (r0, c0) = (self.2.rows.start, self.2.cols.start);
        let piece = Shard {
            rows: r0 + rows.start..r0 + rows.end,
            cols: c0 + cols.start..c0 + cols.end,
        };
        shard::dequantize_shard(self.0, self.1, &piece, out)
    }
}

/// Decoded values as a numpy array of row-major shape `shape`, owning the
/// buffer they were decoded into (no copy).
fn to_numpy<'py>(py: Python<'py>, d: Decoded, shape: &[u64]) -> PyResult<Bound<'py, PyAny>> {
    // numpy refuses an array whose dimensions other than zeros, times the
    // item size, pass `isize::MAX` bytes, even an empty one ([0, 2^61] of
    // f32), and rust-numpy then goes on with a null array (SIGSEGV).
    let item = match d {
        Decoded::F32(_) => 4,
        Decoded::U16(_) => 2,
    };
    let bytes = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(item, |a: u64, &d| a.checked_mul(d));
    if bytes.is_none_or(|b| isize::try_from(b).is_err()) {
        return Err(GGUFError::new_err(format!(
            "shape {shape:?} is too large for a numpy array"
        )));
    }
    let dims = shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| GGUFError::new_err(format!("shape {shape:?} does not fit in memory")))?;
    let bad = |e: numpy::ndarray::ShapeError| {
        GGUFError::new_err(format!("internal error: shape {shape:?}: {e}"))
    };
    Ok(match d {
        Decoded::F32(v) => {
            let a = numpy::ndarray::Array::from_shape_vec(IxDyn(&dims), v).map_err(bad)?;
            PyArray::from_owned_array(py, a).into_any()
        }
        Decoded::U16(v) => {
            let a = numpy::ndarray::Array::from_shape_vec(IxDyn(&dims), v).map_err(bad)?;
            PyArray::from_owned_array(py, a).into_any()
        }
    })
}

/// A GGUF value as a Python object: ints, floats, bools, strings; arrays of
/// numbers or booleans as 1-D numpy arrays of their own type, arrays of
/// strings and of arrays as lists.
fn value_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::U8(x) => x.into_pyobject(py)?.into_any(),
        Value::I8(x) => x.into_pyobject(py)?.into_any(),
        Value::U16(x) => x.into_pyobject(py)?.into_any(),
        Value::I16(x) => x.into_pyobject(py)?.into_any(),
        Value::U32(x) => x.into_pyobject(py)?.into_any(),
        Value::I32(x) => x.into_pyobject(py)?.into_any(),
        Value::U64(x) => x.into_pyobject(py)?.into_any(),
        Value::I64(x) => x.into_pyobject(py)?.into_any(),
        Value::F32(x) => f64::from(*x).into_pyobject(py)?.into_any(),
        Value::F64(x) => x.into_pyobject(py)?.into_any(),
        Value::Bool(x) => PyBool::new(py, *x).to_owned().into_any(),
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(_, items) => {
            let items = items
                .iter()
                .map(|v| value_to_py(py, v))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Packed(a) => array_to_py(py, a)?,
    })
}

fn array_to_py<'py>(py: Python<'py>, a: &Array) -> PyResult<Bound<'py, PyAny>> {
    Ok(match a {
        Array::U8(v) => PyArray1::from_slice(py, v).into_any(),
        Array::I8(v) => PyArray1::from_slice(py, v).into_any(),
        Array::U16(v) => PyArray1::from_slice(py, v).into_any(),
        Array::I16(v) => PyArray1::from_slice(py, v).into_any(),
        Array::U32(v) => PyArray1::from_slice(py, v).into_any(),
        Array::I32(v) => PyArray1::from_slice(py, v).into_any(),
        Array::U64(v) => PyArray1::from_slice(py, v).into_any(),
        Array::I64(v) => PyArray1::from_slice(py, v).into_any(),
        Array::F32(v) => PyArray1::from_slice(py, v).into_any(),
        Array::F64(v) => PyArray1::from_slice(py, v).into_any(),
        Array::Bool(v) => PyArray1::from_slice(py, v).into_any(),
        Array::String(v) => PyList::new(py, v)?.into_any(),
        Array::Array(v) => {
            let items = v
                .iter()
                .map(|a| array_to_py(py, a))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
    })
}

/// A GGUF value's type as gguf-dequant names it (`u32`, `string`,
/// `array[f32]`, `array[array]`, ...).
fn value_type_name(v: &Value) -> String {
    match v {
        Value::Packed(a) => format!("array[{}]", a.item_type().name()),
        Value::Array(t, _) => format!("array[{}]", t.name()),
        other => other.type_name().to_string(),
    }
}

/// Keeps a file (its mapping or its bytes) alive for as long as a numpy
/// array viewing its bytes: the array's `base`.
#[pyclass(frozen, module = "gguf_dequant._native")]
struct FileBytes {
    _file: Arc<GgufFile>,
}

/// An open GGUF file (native half of `gguf_dequant.GGUFFile`).
#[pyclass(frozen, name = "GGUFFile", module = "gguf_dequant._native")]
struct File {
    /// Exactly as given: paths are bytes, which need not be UTF-8.
    path: PathBuf,
    inner: Mutex<Option<Arc<GgufFile>>>,
}

impl File {
    /// The open file, or an error once closed.
    fn file(&self) -> PyResult<Arc<GgufFile>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.clone().ok_or_else(|| {
            PyValueError::new_err(format!("GGUF file {} is closed", self.path.display()))
        })
    }
}

/// Load items (a tensor name, and a shard `(r0, r1, c0, c1)` or `None` for
/// all of it) as the tensors and shards they name, every one checked
/// (known, decodable, the shard inside the tensor) before any is decoded.
#[allow(clippy::type_complexity)]
fn parts<'f>(
    file: &'f GgufFile,
    items: &[(String, Option<(u64, u64, u64, u64)>)],
) -> PyResult<Vec<(&'f TensorInfo, Shard)>> {
    items
        .iter()
        .map(|(name, spec)| {
            let t = file
                .tensor(name)
                .ok_or_else(|| Error::NoSuchTensor(name.clone()))
                .or_raise()?;
            let shard = match *spec {
                None => Shard::whole(t),
                Some((r0, r1, c0, c1)) => Shard {
                    rows: r0..r1,
                    cols: c0..c1,
                },
            };
            shard.check(&t.name, t.ty, &t.ne).or_raise()?;
            if !t.ty.is_dequantizable() {
                return Err(py_err(Error::Unsupported {
                    tensor: Some(t.name.clone()),
                    ty: t.ty,
                }));
            }
            Ok((t, shard))
        })
        .collect()
}

/// `data`, bytes of `file`, as a read-only uint8 array that keeps `file`
/// alive.
fn view_of<'py>(
    py: Python<'py>,
    file: &Arc<GgufFile>,
    data: &[u8],
) -> PyResult<Bound<'py, PyArray1<u8>>> {
    let view = ArrayView1::from(data);
    let keep = Bound::new(
        py,
        FileBytes {
            _file: Arc::clone(file),
        },
    )?;
    // SAFETY: `data` lies in the bytes of the `GgufFile` that `keep`
    // holds an `Arc` of: its mapping (or its vector) is never changed,
    // moved or freed while that `Arc` lives, and `keep` becomes the
    // array's base, which numpy keeps alive as long as the array (and
    // any view of it). The bytes are never written: the array is made
    // read-only below before it is returned, and numpy refuses to make
    // it writeable again, as its base exports no writeable buffer.
    let array = unsafe { PyArray1::borrow_from_array(&view, keep.into_any()) };
    array.readwrite().make_nonwriteable();
    Ok(array)
}

#[pymethods]
impl File {
    /// Opens and parses a GGUF file: mapped (`mmap=True`) or read into memory.
    /// `path` is a `str`, `bytes` or `os.PathLike` of either, taken exactly.
    #[new]
    #[pyo3(signature = (path, mmap = true))]
    fn new(py: Python<'_>, path: &Bound<'_, PyAny>, mmap: bool) -> PyResult<Self> {
        let path: PathBuf = match path.cast::<PyBytes>() {
            Ok(b) => OsString::from_vec(b.as_bytes().to_vec()).into(),
            // str (os.fsencode's bytes, surrogate escapes undone) or PathLike
            Err(_) => path.extract()?,
        };
        let file = py
            .detach(|| guarded(|| GgufFile::open_with(&path, OpenOptions { mmap })))
            .or_raise()?;
        Ok(File {
            path,
            inner: Mutex::new(Some(Arc::new(file))),
        })
    }

    /// The path as a `str` (os.fsdecode's: bytes that are not UTF-8 as
    /// surrogate escapes, so that it names the same file).
    #[getter]
    fn path(&self) -> &std::ffi::OsStr {
        self.path.as_os_str()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }

    #[getter]
    fn version(&self) -> PyResult<u32> {
        Ok(self.file()?.version())
    }

    #[getter]
    fn alignment(&self) -> PyResult<u64> {
        Ok(self.file()?.alignment())
    }

    #[getter]
    fn data_offset(&self) -> PyResult<u64> {
        Ok(self.file()?.data_offset())
    }

    #[getter]
    fn file_size(&self) -> PyResult<u64> {
        Ok(self.file()?.file_len())
    }

    #[getter]
    fn mapped(&self) -> PyResult<bool> {
        Ok(self.file()?.is_mapped())
    }

    /// The key-value pairs, in file order, as a dict.
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let file = self.file()?;
        let d = PyDict::new(py);
        for (k, v) in file.metadata() {
            d.set_item(k, value_to_py(py, v)?)?;
        }
        Ok(d)
    }

    /// Each key's GGUF value type, in file order, as a dict.
    fn metadata_types<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let file = self.file()?;
        let d = PyDict::new(py);
        for (k, v) in file.metadata() {
            d.set_item(k, value_type_name(v))?;
        }
        Ok(d)
    }

    /// The tensors in file order: (name, type name, type id, ne (ggml order),
    /// absolute offset, bytes, elements).
    #[allow(clippy::type_complexity)]
    fn tensor_infos(&self) -> PyResult<Vec<(String, &'static str, u32, Vec<u64>, u64, u64, u64)>> {
        let file = self.file()?;
        Ok(file
            .tensors()
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    t.ty.name(),
                    t.ty.id(),
                    t.ne.clone(),
                    t.offset,
                    t.nbytes,
                    t.n_elems,
                )
            })
            .collect())
    }

    /// Tensor `name`'s blocks as a read-only uint8 array viewing the file's
    /// mapping (or its bytes in memory), which the array keeps alive.
    fn raw<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyArray1<u8>>> {
        let file = self.file()?;
        let t = file
            .tensor(name)
            .ok_or_else(|| Error::NoSuchTensor(name.to_string()))
            .or_raise()?;
        let data = file.tensor_data(t).or_raise()?;
        view_of(py, &file, data)
    }

    /// The whole file as it was parsed: a read-only uint8 array viewing its
    /// mapping (or its bytes in memory), for readers that lay out its parts
    /// themselves (the transformers patch): the same bytes as the metadata
    /// came from, never a second open of a path that may name another file
    /// by then.
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<u8>>> {
        let file = self.file()?;
        view_of(py, &file, file.as_bytes())
    }

    /// Decodes tensors, each whole (`None`) or a shard `(r0, r1, c0, c1)`:
    /// rows `[r0, r1)` of the row-major view and columns `[c0, c1)` of each
    /// row. All items are checked before any is decoded; each decode runs
    /// with the GIL released. Returns arrays of f32, or of u16 holding f16 or
    /// bf16 bits.
    #[allow(clippy::type_complexity)]
    fn load<'py>(
        &self,
        py: Python<'py>,
        items: Vec<(String, Option<(u64, u64, u64, u64)>)>,
        dtype: &str,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let out = out_type(dtype)?;
        let file = self.file()?;
        let jobs = parts(&file, &items)?;
        let mut arrays = Vec::with_capacity(jobs.len());
        for (t, shard) in jobs {
            let what = format!("tensor '{}'", t.name);
            let decoded = decode_into(py, out, &what, &FileShard(&file, t, &shard))?;
            arrays.push(to_numpy(py, decoded, &shard.shape(&t.ne))?);
        }
        Ok(arrays)
    }

    /// Closes the file. Arrays from `raw` keep its bytes alive until they go.
    fn close(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Decodes raw blocks (a contiguous 1-D uint8 array) of `ggml_type` into an
/// array of row-major shape `shape`, with the GIL released.
#[pyfunction]
#[pyo3(signature = (blocks, ggml_type, shape, dtype = "float32"))]
fn dequantize<'py>(
    py: Python<'py>,
    blocks: PyReadonlyArray1<'py, u8>,
    ggml_type: &Bound<'py, PyAny>,
    shape: Vec<u64>,
    dtype: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let ty = self::ggml_type(ggml_type)?;
    let out = out_type(dtype)?;
    let src = blocks
        .as_slice()
        .map_err(|_| PyValueError::new_err("blocks must be a contiguous uint8 array"))?;
    if !ty.is_dequantizable() {
        return Err(py_err(Error::Unsupported { tensor: None, ty }));
    }
    let n = elements(&shape)?;
    if ty.bytes_for(n) != Some(src.len() as u64) {
        let (qk, bb) = (ty.block_elems(), ty.block_bytes());
        let need = match ty.bytes_for(n) {
            Some(b) => format!("{b} bytes"),
            None => format!("a multiple of {qk} elements"),
        };
        return Err(py_err(Error::Length(format!(
            "{} bytes of {ty} blocks for shape {shape:?} ({n} elements): {ty} stores {qk} \
             elements in {bb} bytes, so that shape needs {need}",
            src.len()
        ))));
    }
    let decoded = decode_into(py, out, "the output", &Blocks(ty, src, n, None))?;
    to_numpy(py, decoded, &shape)
}

/// Decodes raw blocks (a C-contiguous uint8 array of any shape) of
/// `ggml_type` into `out`, an existing writeable, C-contiguous array of any
/// shape: `float32` for `dtype="float32"`, `uint16` or `int16` (the bits)
/// for `"float16"` and `"bfloat16"`, holding exactly the blocks' elements.
/// Nothing is allocated; the GIL is released while decoding. `out` is
/// checked before anything is written: a wrong length, item type or layout
/// raises and leaves it as it was. `streaming`: write with non-temporal
/// stores (True), through the caches (False: for an output read again soon,
/// that fits in them), or as the library chooses by size (None).
#[pyfunction]
#[pyo3(signature = (blocks, ggml_type, out, dtype = "float32", streaming = None))]
fn dequantize_into<'py>(
    py: Python<'py>,
    blocks: PyReadonlyArrayDyn<'py, u8>,
    ggml_type: &Bound<'py, PyAny>,
    out: &Bound<'py, PyAny>,
    dtype: &str,
    streaming: Option<bool>,
) -> PyResult<()> {
    let ty = self::ggml_type(ggml_type)?;
    let kind = out_type(dtype)?;
    let src = blocks
        .as_slice()
        .map_err(|_| PyValueError::new_err("blocks must be a contiguous uint8 array"))?;
    if !ty.is_dequantizable() {
        return Err(py_err(Error::Unsupported { tensor: None, ty }));
    }
    let bb = ty.block_bytes();
    if !src.len().is_multiple_of(bb) {
        return Err(py_err(Error::Length(format!(
            "{} bytes is not a whole number of {ty} blocks ({bb} bytes each)",
            src.len()
        ))));
    }
    let n = (src.len() / bb * ty.block_elems()) as u64;
    let job = Blocks(ty, src, n, streaming);
    // the output's element count, checked before any value is written
    let fits = |len: usize| -> PyResult<()> {
        if len as u64 != n {
            return Err(py_err(Error::Length(format!(
                "out holds {len} elements, but {} bytes of {ty} blocks decode to {n}",
                src.len()
            ))));
        }
        Ok(())
    };
    let layout = |what: &str| {
        PyValueError::new_err(format!(
            "out must be a writeable, C-contiguous {what} array"
        ))
    };
    with_out_elem!(kind, O => {
        // f32 as float32, the 16-bit values as their bits: uint16 or int16
        // (what torch's tensors viewed as int16 give numpy)
        let (mut f, mut u, mut i);
        let v: &mut [O] = if kind == OutType::F32 {
            f = out
                .cast::<PyArrayDyn<f32>>()
                .map_err(|_| layout("float32"))?
                .try_readwrite()
                .map_err(|_| layout("float32"))?;
            bytemuck::cast_slice_mut(f.as_slice_mut().map_err(|_| layout("float32"))?)
        } else if let Ok(a) = out.cast::<PyArrayDyn<u16>>() {
            u = a.try_readwrite().map_err(|_| layout("uint16"))?;
            bytemuck::cast_slice_mut(u.as_slice_mut().map_err(|_| layout("uint16"))?)
        } else if let Ok(a) = out.cast::<PyArrayDyn<i16>>() {
            i = a.try_readwrite().map_err(|_| layout("int16"))?;
            bytemuck::cast_slice_mut(i.as_slice_mut().map_err(|_| layout("int16"))?)
        } else {
            return Err(layout("uint16 or int16"));
        };
        fits(v.len())?;
        run(py, &job, v)
    })
}

/// The most dimensions a numpy array has (numpy 1's `NPY_MAXDIMS`, and what
/// rust-numpy takes).
const MAX_DIMS: usize = 32;

/// The number of elements of an array of `shape`, or a `ValueError` naming
/// it where numpy could not make that array: more than [`MAX_DIMS`]
/// dimensions, or dimensions whose product (zeros left out, as numpy and
/// ndarray count) does not fit an `isize`.
fn elements(shape: &[u64]) -> PyResult<u64> {
    if shape.len() > MAX_DIMS {
        return Err(PyValueError::new_err(format!(
            "shape has {} dimensions: numpy arrays have at most {MAX_DIMS}",
            shape.len()
        )));
    }
    shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .filter(|&n| isize::try_from(n).is_ok())
        .map(|n| if shape.contains(&0) { 0 } else { n })
        .ok_or_else(|| PyValueError::new_err(format!("shape {shape:?} is too large")))
}

/// Rank `rank`'s shard of a tensor of `world` ranks under `split`
/// (`megatron`, `rows`, `cols` or `replicate`), by the crate's
/// `Split::shard`: `None` for the whole tensor, else `(r0, r1, c0, c1)`.
/// `ne` is in ggml order; `ggml_type` is needed only to split columns.
#[pyfunction]
#[pyo3(signature = (name, ne, ggml_type, rank, world, split = "megatron"))]
fn tp_shard(
    name: String,
    ne: Vec<u64>,
    ggml_type: Option<&Bound<'_, PyAny>>,
    rank: u64,
    world: u64,
    split: &str,
) -> PyResult<Option<(u64, u64, u64, u64)>> {
    let ty = ggml_type.map(self::ggml_type).transpose()?;
    let n_elems = ne
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| PyValueError::new_err(format!("shape {ne:?} is too large")))?;
    let t = TensorInfo {
        name,
        ty: ty.unwrap_or(GgmlType::F32),
        nbytes: ty.and_then(|ty| ty.bytes_for(n_elems)).unwrap_or(0),
        ne,
        offset: 0,
        n_elems,
    };
    let how = match split {
        "megatron" => Split::megatron(&t),
        "rows" => Split::Rows,
        "cols" | "columns" => Split::Cols,
        "replicate" => Split::Replicate,
        other => {
            return Err(PyValueError::new_err(format!(
                "split {other:?}: expected \"megatron\", \"rows\", \"cols\" or \"replicate\""
            )))
        }
    };
    if how == Split::Replicate {
        return Ok(None);
    }
    if how == Split::Cols && ty.is_none() {
        return Err(PyTypeError::new_err(format!(
            "tensor '{}' splits by columns, at block boundaries: its ggml type is needed",
            t.name
        )));
    }
    let s = how.shard(&t, rank, world).or_raise()?;
    Ok(Some((s.rows.start, s.rows.end, s.cols.start, s.cols.end)))
}

/// The id of a ggml type given by name (`"q4_K"`, any case) or id, with the
/// errors of every other function taking one (`ValueError`, `TypeError`).
#[pyfunction]
fn ggml_type_id(ggml_type: &Bound<'_, PyAny>) -> PyResult<u32> {
    Ok(self::ggml_type(ggml_type)?.id())
}

/// The output dtype a name stands for, as its numpy and torch name
/// (`"float32"`, `"float16"` or `"bfloat16"`): the crate's parser of dtype
/// names (its `OutType::NAMES`, in any case), which every function taking a
/// `dtype` runs, so that Python keeps no list of them. A `ValueError` naming
/// the names for any other.
#[pyfunction]
fn parse_dtype(name: &str) -> PyResult<&'static str> {
    Ok(out_type(name)?.long_name())
}

/// Every dtype name `parse_dtype` takes (lowercase; it takes any ASCII
/// case) with the dtype it stands for: the crate's `OutType::NAMES`.
#[pyfunction]
fn dtype_names() -> Vec<(&'static str, &'static str)> {
    OutType::NAMES
        .iter()
        .map(|&(name, t)| (name, t.long_name()))
        .collect()
}

/// Every ggml type: (name, id, elements per block, bytes per block, decodable).
#[pyfunction]
fn ggml_types() -> Vec<(&'static str, u32, usize, usize, bool)> {
    TYPES
        .iter()
        .map(|t| {
            (
                t.name,
                t.ty.id(),
                t.block_elems,
                t.block_bytes,
                t.dequantizable,
            )
        })
        .collect()
}

/// Sets up rust-numpy's access to numpy's C API now, where a failure is an
/// exception of the import: rust-numpy sets it up on first use and panics
/// where that fails, which Ctrl-C at that moment made happen (the set-up runs
/// Python code, which raises the pending `KeyboardInterrupt`). Its steps are
/// taken here first, fallibly; once they succeed they are cached, and what
/// rust-numpy then does itself runs no Python code.
fn numpy_api(py: Python<'_>) -> PyResult<()> {
    // numpy's version and core module (`numpy._core` or `numpy.core`), then
    // the API capsule from it
    numpy::get_array_module(py)?.getattr("_ARRAY_API")?;
    // the array API itself, and the borrow checking shared by extensions
    // (set up by the first `readonly`)
    let probe = PyArray1::<u8>::zeros(py, 0, false);
    drop(probe.try_readonly());
    Ok(())
}

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    numpy_api(m.py())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("GGUFError", m.py().get_type::<GGUFError>())?;
    m.add_class::<File>()?;
    m.add_class::<FileBytes>()?;
    m.add_function(wrap_pyfunction!(dequantize, m)?)?;
    m.add_function(wrap_pyfunction!(dequantize_into, m)?)?;
    m.add_function(wrap_pyfunction!(tp_shard, m)?)?;
    m.add_function(wrap_pyfunction!(ggml_types, m)?)?;
    m.add_function(wrap_pyfunction!(ggml_type_id, m)?)?;
    m.add_function(wrap_pyfunction!(parse_dtype, m)?)?;
    m.add_function(wrap_pyfunction!(dtype_names, m)?)?;
    #[cfg(feature = "cuda")]
    m.add_function(wrap_pyfunction!(cuda::load_cuda, m)?)?;
    #[cfg(feature = "cuda")]
    m.add_function(wrap_pyfunction!(cuda::dequantize_cuda, m)?)?;
    Ok(())
}
