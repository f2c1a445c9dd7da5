//! Decoding into device memory an engine owns (PyTorch's caching allocator,
//! another framework's pool), ordered after the engine's own stream, which
//! cudarc cannot adopt: the engine's stream is only a raw `CUstream` here.
//!
//! What orders what: an event recorded on the engine's stream when the call
//! starts is the pipeline's `ready` event, so no decode writes an output
//! before the engine's earlier work on that stream (the allocator may hand
//! out memory that an earlier kernel there still uses); the call returns once
//! every decode has run, so the engine's later work sees whole outputs.

use cudarc::driver::{sys, CudaSlice};

use super::{cuda_err, Gpu};
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, TensorInfo};
use crate::out::OutElem;
use crate::pipeline::{LoadReport, Pipeline};
use crate::shard::Shard;

/// Device memory the caller owns: `len` elements at `ptr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForeignBuffer {
    pub ptr: u64,
    pub len: usize,
}

/// Borrowed memory dressed as cudarc slices for the pipeline, given back
/// (leaked, never freed) when dropped, whatever happened meanwhile.
struct Borrowed<O>(Vec<CudaSlice<O>>);

impl<O> Drop for Borrowed<O> {
    fn drop(&mut self) {
        for s in self.0.drain(..) {
            // the memory is the caller's: forget it, never free it
            let _ = s.leak();
        }
    }
}

impl Gpu {
    /// Decodes a shard of each tensor into the caller's device memory
    /// `outs` (one buffer of the shard's element count per part) through
    /// `pipeline`, after the work queued so far on the caller's `stream`;
    /// complete on return.
    ///
    /// # Safety
    /// Each buffer must be device memory of this GPU's context, valid for
    /// writes of `len` elements of `O`, and used by nothing else until this
    /// returns; `stream` must be a stream of this context (null: the legacy
    /// default stream).
    pub unsafe fn load_into_foreign<O: OutElem>(
        &self,
        pipeline: &mut Pipeline<Gpu>,
        stream: super::RawStream,
        file: &GgufFile,
        parts: &[(&TensorInfo, Shard)],
        outs: &[ForeignBuffer],
    ) -> Result<LoadReport> {
        if let Some(b) = outs.iter().find(|b| b.ptr == 0 && b.len > 0) {
            return Err(Error::Invalid(format!(
                "a null device pointer for {} elements",
                b.len
            )));
        }
        self.ctx
            .bind_to_thread()
            .map_err(|e| cuda_err("binding the context", e))?;
        let ready = self
            .ctx
            .new_event(None)
            .map_err(|e| cuda_err("creating an event", e))?;
        // SAFETY: `ready` is an event of this context and `stream` a stream of
        // it (the caller's promise); recording enqueues nothing else.
        unsafe { sys::cuEventRecord(ready.cu_event(), stream) }
            .result()
            .map_err(|e| cuda_err("recording an event on the caller's stream", e))?;
        let mut borrowed = Borrowed(
            outs.iter()
                // SAFETY: valid device memory of `len` elements of this
                // context (the caller's promise); `Borrowed` leaks the slices,
                // so cudarc never frees the caller's memory.
                .map(|b| unsafe { self.stream.upgrade_device_ptr::<O>(b.ptr, b.len) })
                .collect(),
        );
        pipeline.load_parts_into(self, &ready, file, parts, &mut borrowed.0, &mut |_| {})
    }
}

impl Gpu {
    /// Decodes `src` (whole blocks of `ty`, `src.len` bytes) into `dst`
    /// (`dst.len` elements of `O`), both device memory the caller owns, in
    /// the order of the caller's `stream`: after its work so far, and before
    /// its later work (an event it waits for), without blocking the host.
    ///
    /// # Safety
    /// As [`Gpu::load_into_foreign`]: both buffers device memory of this
    /// GPU's context, `src` readable for `src.len` bytes and `dst` writable
    /// for `dst.len` elements of `O`, until the caller's stream has passed
    /// this decode; `stream` a stream of this context.
    pub unsafe fn dequantize_foreign<O: OutElem>(
        &self,
        stream: super::RawStream,
        ty: crate::types::GgmlType,
        src: ForeignBuffer,
        dst: ForeignBuffer,
    ) -> Result<()> {
        crate::types::check_lengths(ty, src.len, dst.len)?;
        if dst.len == 0 {
            return Ok(());
        }
        if src.ptr == 0 || dst.ptr == 0 {
            return Err(Error::Invalid("a null device pointer".into()));
        }
        self.ctx
            .bind_to_thread()
            .map_err(|e| cuda_err("binding the context", e))?;
        let event = || {
            self.ctx
                .new_event(None)
                .map_err(|e| cuda_err("creating an event", e))
        };
        let ready = event()?;
        // SAFETY: an event of this context recorded on a stream of it.
        unsafe { sys::cuEventRecord(ready.cu_event(), stream) }
            .result()
            .map_err(|e| cuda_err("recording an event on the caller's stream", e))?;
        self.stream
            .wait(&ready)
            .map_err(|e| cuda_err("waiting for the caller's stream", e))?;
        // SAFETY: the caller's memory, as promised; leaked, never freed.
        let (src_slice, dst_slice) = unsafe {
            (
                self.stream.upgrade_device_ptr::<u8>(src.ptr, src.len),
                self.stream.upgrade_device_ptr::<O>(dst.ptr, dst.len),
            )
        };
        let src_slice = Borrowed(vec![src_slice]);
        let mut dst_slice = Borrowed(vec![dst_slice]);
        self.dequantize_on(
            &self.stream,
            ty,
            &src_slice.0[0].as_view(),
            &mut dst_slice.0[0].as_view_mut(),
        )?;
        let done = event()?;
        done.record(&self.stream)
            .map_err(|e| cuda_err("recording the decode's event", e))?;
        // SAFETY: an event of this context, waited for by a stream of it; the
        // driver keeps the wait valid after the event is destroyed.
        unsafe { sys::cuStreamWaitEvent(stream, done.cu_event(), 0) }
            .result()
            .map_err(|e| cuda_err("ordering the caller's stream after the decode", e))
    }
}
