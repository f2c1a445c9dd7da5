//! Decoding into torch's CUDA tensors: the Python side allocates the outputs
//! with torch (its caching allocator; torch owns them) and passes their
//! device pointers and torch's current stream; the crate's pipeline decodes
//! into them, ordered after that stream's earlier work (`Loader::load_into_foreign`).
//! torch's current device is left as it was (the thread's current CUDA
//! context, which cudarc changes, is put back).
//! One `Loader<Gpu>` per device (kernels loaded into the device's primary
//! context, which torch uses too, and its staging), made on first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use gguf_dequant::gpu::{ForeignBuffer, Gpu, KeepCurrentContext};
use gguf_dequant::pipeline::{LoadOptions, Loader};
use gguf_dequant::{with_out_elem, Error};
use pyo3::prelude::*;

use crate::{guarded, out_type, File, OrRaise};

type Devices = Mutex<HashMap<usize, Arc<Loader<Gpu>>>>;

/// Device `ordinal`'s loader, made on first use.
fn device(ordinal: usize) -> Result<Arc<Loader<Gpu>>, Error> {
    static DEVICES: OnceLock<Devices> = OnceLock::new();
    let mut map = DEVICES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(d) = map.get(&ordinal) {
        return Ok(d.clone());
    }
    let d = Arc::new(Gpu::new(ordinal)?.loader(&LoadOptions::default())?);
    map.insert(ordinal, d.clone());
    Ok(d)
}

/// Decodes tensors (whole, or shards `(r0, r1, c0, c1)`) into `outs`, device
/// memory of CUDA device `ordinal` given as `(pointer, elements)`, after the
/// work queued so far on `stream` (a `CUstream`, as torch's
/// `torch.cuda.Stream.cuda_stream`); complete on return. The GIL is
/// released meanwhile.
///
/// Private to `gguf_dequant.torch`, which passes the pointers of contiguous
/// tensors it has just allocated with the right dtype and size on that
/// device: other pointers would let the GPU write anywhere.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn load_cuda(
    py: Python<'_>,
    file: &File,
    items: Vec<(String, Option<(u64, u64, u64, u64)>)>,
    dtype: &str,
    ordinal: usize,
    stream: usize,
    outs: Vec<(u64, usize)>,
) -> PyResult<()> {
    let out = out_type(dtype)?;
    let f = file.file()?;
    let parts = crate::parts(&f, &items)?;
    let outs: Vec<ForeignBuffer> = outs
        .into_iter()
        .map(|(ptr, len)| ForeignBuffer { ptr, len })
        .collect();
    py.detach(|| {
        guarded(|| {
            // opening the device makes its context current: torch's current
            // device must not change under it.
            // SAFETY: the current context is torch's (a primary context,
            // retained by the CUDA runtime for the process) or none; nothing
            // here destroys a context.
            let _kept = unsafe { KeepCurrentContext::new() };
            let loader = device(ordinal)?;
            let stream = stream as gguf_dequant::gpu::RawStream;
            // SAFETY: the outputs are contiguous torch tensors of this device
            // that gguf_dequant.torch has just allocated, of the dtype and
            // element count of each part (the pipeline checks the counts), and
            // nothing else uses them before this returns; `stream` is torch's
            // current stream of the device, in its primary context (which
            // Gpu::new opens).
            let loaded = with_out_elem!(out, O => unsafe {
                loader.load_into_foreign::<O>(stream, &f, &parts, &outs)
            });
            loaded.map(|_| ())
        })
    })
    .or_raise()
}

/// Decodes `nbytes` of blocks of `ggml_type` at device pointer `src` into
/// `n` elements at device pointer `dst`, on CUDA device `ordinal`, in the
/// order of `stream` (after its earlier work, before its later work), without
/// waiting for it.
///
/// Private to `gguf_dequant.dequantize`, which passes a contiguous uint8
/// torch tensor of that device and an output it has just allocated there.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn dequantize_cuda(
    py: Python<'_>,
    src: u64,
    nbytes: usize,
    ggml_type: &Bound<'_, PyAny>,
    dst: u64,
    n: usize,
    dtype: &str,
    ordinal: usize,
    stream: usize,
) -> PyResult<()> {
    let ty = crate::ggml_type(ggml_type)?;
    let out = out_type(dtype)?;
    let (src, dst) = (
        ForeignBuffer {
            ptr: src,
            len: nbytes,
        },
        ForeignBuffer { ptr: dst, len: n },
    );
    py.detach(|| {
        guarded(|| {
            // SAFETY: as in `load_cuda`.
            let _kept = unsafe { KeepCurrentContext::new() };
            let gpu = device(ordinal)?;
            let gpu = gpu.device();
            let stream = stream as gguf_dequant::gpu::RawStream;
            // SAFETY: `src` is a contiguous uint8 tensor of this device and
            // `dst` a tensor gguf_dequant.dequantize has just allocated there
            // for `n` elements of the dtype; torch keeps both alive until its
            // stream has passed this decode (the caller holds them, and the
            // caching allocator reuses memory in stream order); `stream` is
            // torch's current stream of the device, in its primary context.
            with_out_elem!(out, O => unsafe {
                gpu.dequantize_foreign::<O>(stream, ty, src, dst)
            })
        })
    })
    .or_raise()
}
