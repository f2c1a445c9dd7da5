//! The GPU as the loader pipeline's [`Device`]: each operation is the cudarc
//! call of the same name, on the caller's stream.

use std::ops::Range;
use std::sync::Arc;

use cudarc::driver::{sys, CudaEvent, CudaSlice, CudaStream, DevicePtrMut, PinnedHostSlice};

use super::{alloc_elems, Gpu};
use crate::error::{Error, Result};
use crate::out::OutElem;
use crate::pipeline::{Device, Rows};
use crate::types::GgmlType;

impl Device for Gpu {
    type Stream = Arc<CudaStream>;
    type Event = CudaEvent;
    type Pinned = PinnedHostSlice<u8>;
    type Bytes = CudaSlice<u8>;
    type Out<O: OutElem> = CudaSlice<O>;

    fn new_stream(&self) -> Result<Arc<CudaStream>> {
        self.ctx
            .new_stream()
            .map_err(|e| Error::cuda("creating a stream", e))
    }

    fn alloc_pinned(&self, bytes: usize) -> Result<PinnedHostSlice<u8>> {
        // SAFETY: bytes are plain data; the pipeline writes staging memory
        // (fill_pinned) before any copy reads it.
        unsafe { self.ctx.alloc_pinned::<u8>(bytes) }
            .map_err(|e| Error::cuda("allocating pinned staging memory", e))
    }

    fn alloc_bytes(&self, stream: &Arc<CudaStream>, bytes: usize) -> Result<CudaSlice<u8>> {
        // SAFETY: staging memory is written by a copy before a decode reads it
        // (stream order).
        unsafe { alloc_elems::<u8>(stream, bytes) }
            .map_err(|e| Error::cuda("allocating device staging memory", e))
    }

    fn alloc_out<O: OutElem>(&self, stream: &Arc<CudaStream>, n: usize) -> Result<CudaSlice<O>> {
        // SAFETY: f32/f16/bf16 have no invalid bit patterns; the pipeline's
        // decodes write every element before the output is handed over.
        unsafe { alloc_elems::<O>(stream, n) }
            .map_err(|e| Error::cuda(format!("allocating {n} output elements"), e))
    }

    fn out_len<O: OutElem>(&self, out: &CudaSlice<O>) -> usize {
        out.len()
    }

    fn fill_pinned(
        &self,
        pinned: &mut PinnedHostSlice<u8>,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<()>,
    ) -> Result<()> {
        let host = pinned
            .as_mut_slice()
            .map_err(|e| Error::cuda("staging", e))?;
        let have = host.len();
        let buf = host
            .get_mut(..len)
            .ok_or_else(|| Error::Length(format!("{len} bytes into a staging buffer of {have}")))?;
        fill(buf)
    }

    fn copy_in(
        &self,
        stream: &Arc<CudaStream>,
        pinned: &PinnedHostSlice<u8>,
        dst: &mut CudaSlice<u8>,
        rows: Rows,
    ) -> Result<()> {
        let host = pinned.as_slice().map_err(|e| Error::cuda("staging", e))?;
        rows.check(host.len(), dst.len())?;
        // From page-locked memory the copy is asynchronous: the pipeline
        // refills `pinned` only after an event recorded after this copy.
        if rows.height <= 1 {
            return stream
                .memcpy_htod(&host[..rows.width], &mut dst.slice_mut(..rows.width))
                .map_err(|e| Error::cuda("copying blocks to the device", e));
        }
        let (dst_ptr, _record) = dst.device_ptr_mut(stream);
        let copy = sys::CUDA_MEMCPY2D {
            srcXInBytes: 0,
            srcY: 0,
            srcMemoryType: sys::CUmemorytype::CU_MEMORYTYPE_HOST,
            srcHost: host.as_ptr().cast(),
            srcDevice: 0,
            srcArray: std::ptr::null_mut(),
            srcPitch: rows.pitch,
            dstXInBytes: 0,
            dstY: 0,
            dstMemoryType: sys::CUmemorytype::CU_MEMORYTYPE_DEVICE,
            dstHost: std::ptr::null_mut(),
            dstDevice: dst_ptr,
            dstArray: std::ptr::null_mut(),
            dstPitch: rows.width,
            WidthInBytes: rows.width,
            Height: rows.height,
        };
        self.ctx
            .bind_to_thread()
            .map_err(|e| Error::cuda("binding the context", e))?;
        // SAFETY: `rows.check` keeps the source rows inside `host` (page-locked,
        // alive until the event the pipeline records after this copy has
        // completed) and the packed rows inside `dst`; `dst`'s pointer was
        // taken for `stream`, which orders the copy after its earlier uses.
        unsafe { sys::cuMemcpy2DAsync_v2(&copy, stream.cu_stream()) }
            .result()
            .map_err(|e| Error::cuda("copying shard rows to the device", e))
    }

    fn decode<O: OutElem>(
        &self,
        stream: &Arc<CudaStream>,
        ty: GgmlType,
        src: &CudaSlice<u8>,
        len: usize,
        dst: &mut CudaSlice<O>,
        dst_range: Range<usize>,
    ) -> Result<()> {
        if len > src.len() || dst_range.start > dst_range.end || dst_range.end > dst.len() {
            return Err(Error::Length(format!(
                "decoding {len} bytes into elements {dst_range:?} of {}",
                dst.len()
            )));
        }
        self.dequantize_on(stream, ty, &src.slice(..len), &mut dst.slice_mut(dst_range))
    }

    fn copy_out<O: OutElem>(
        &self,
        stream: &Arc<CudaStream>,
        src: &CudaSlice<O>,
        dst: &mut [O],
    ) -> Result<()> {
        if dst.len() != src.len() {
            return Err(Error::Length(format!(
                "copying {} elements into a host buffer of {}",
                src.len(),
                dst.len()
            )));
        }
        if !dst.is_empty() {
            stream
                .memcpy_dtoh(src, dst)
                .map_err(|e| Error::cuda("copying the output to the host", e))?;
        }
        stream.synchronize().map_err(|e| Error::cuda("decoding", e))
    }

    fn record(&self, stream: &Arc<CudaStream>) -> Result<CudaEvent> {
        stream
            .record_event(None)
            .map_err(|e| Error::cuda("recording an event", e))
    }

    fn wait(&self, stream: &Arc<CudaStream>, event: &CudaEvent) -> Result<()> {
        stream
            .wait(event)
            .map_err(|e| Error::cuda("waiting for an event", e))
    }

    fn synchronize_event(&self, event: &CudaEvent) -> Result<()> {
        event
            .synchronize()
            .map_err(|e| Error::cuda("waiting for a staging buffer", e))
    }

    fn synchronize(&self, stream: &Arc<CudaStream>) -> Result<()> {
        let first = stream.synchronize();
        if first.is_err() {
            // cudarc first reports (and clears) an error a drop recorded
            // earlier, without waiting: wait now, so that the stream is
            // drained whatever the error was.
            let _ = stream.synchronize();
        }
        first.map_err(|e| Error::cuda("synchronizing", e))
    }
}
