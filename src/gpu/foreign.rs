//! Decoding into device memory an engine owns (PyTorch's caching allocator,
//! another framework's pool), ordered with the engine's own stream, given as
//! a raw `CUstream` (wrapped, never destroyed, by cudarc's borrowed streams).
//!
//! What orders what: a load's `ready` event is recorded on the engine's
//! stream when the call starts, so no decode writes an output before the
//! engine's earlier work there (its allocator may hand out memory an earlier
//! kernel still uses); the call returns once every copy and decode of the
//! load has run, also when it fails, so the engine may free or reuse the
//! outputs at once. A single decode is launched on the engine's stream
//! itself, in its order, without waiting.
//!
//! The engine's memory is dressed as cudarc slices for the kernels, each
//! leaked (never freed) from the moment it exists; and the thread's current
//! CUDA context is put back as it was, which the CUDA runtime (PyTorch's
//! current device) reads.

use cudarc::driver::{sys, CudaSlice};

use super::Gpu;
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, TensorInfo};
use crate::out::OutElem;
use crate::pipeline::{LoadReport, Loader};
use crate::shard::Shard;

/// Device memory the caller owns: `len` elements at `ptr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForeignBuffer {
    /// The device address of the first element.
    pub ptr: u64,
    /// Elements.
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

/// The calling thread's current CUDA context, made current again when
/// dropped. cudarc makes a device's context current on the thread that uses
/// it and leaves it so; an engine on the CUDA runtime (PyTorch) takes its
/// current device from that context, so a call for device 1 from a thread on
/// device 0 would otherwise move the engine's later work to device 1.
#[must_use = "the context is put back when this is dropped: bind it to a name"]
pub struct KeepCurrentContext(Option<sys::CUcontext>, std::marker::PhantomData<*const ()>);

impl KeepCurrentContext {
    /// Saves the calling thread's current CUDA context, to make it current
    /// again when the guard drops.
    ///
    /// # Safety
    /// The context current now (if any) must still exist when the guard
    /// drops, on this thread: nothing meanwhile may destroy it (a primary
    /// context, as the CUDA runtime's and cudarc's, lives as long as the
    /// process retains it). Making a destroyed context current is undefined
    /// behaviour in the driver.
    pub unsafe fn new() -> Self {
        if !super::driver_present() {
            // no driver: no context can be made current
            return KeepCurrentContext(None, std::marker::PhantomData);
        }
        let mut ctx = std::ptr::null_mut();
        // SAFETY: writes the thread's current context (null: none) into
        // `ctx`. Before the driver is initialized it fails, and then no
        // context is current: null is right.
        let r = unsafe { sys::cuCtxGetCurrent(&mut ctx) };
        if r != sys::CUresult::CUDA_SUCCESS {
            ctx = std::ptr::null_mut();
        }
        KeepCurrentContext(Some(ctx), std::marker::PhantomData)
    }
}

impl Drop for KeepCurrentContext {
    fn drop(&mut self) {
        if let Some(ctx) = self.0 {
            // SAFETY: `ctx` was current on this thread when saved (or null:
            // none was, and null makes none current); nothing here destroys
            // contexts (cudarc only retains and releases primary ones, which
            // outlive the engine that made them current). A failure leaves
            // the thread as cudarc left it: nothing to report it to.
            let _ = unsafe { sys::cuCtxSetCurrent(ctx) };
        }
    }
}

/// Dresses the caller's buffers as cudarc slices on `stream`, each in the
/// returned `Borrowed` from the moment it exists (cudarc's constructor may
/// panic part way: the slices made by then are still leaked, not freed).
///
/// # Safety
/// As [`Loader::load_into_foreign`]'s buffers.
unsafe fn borrow<O>(
    stream: &std::sync::Arc<cudarc::driver::CudaStream>,
    bufs: &[ForeignBuffer],
) -> Borrowed<O> {
    let mut borrowed = Borrowed(Vec::with_capacity(bufs.len()));
    for b in bufs {
        // SAFETY: valid device memory of `len` elements of the stream's
        // context (the caller's promise); `Borrowed` leaks the slice, so
        // cudarc never frees the caller's memory.
        borrowed
            .0
            .push(unsafe { stream.upgrade_device_ptr::<O>(b.ptr, b.len) });
    }
    borrowed
}

impl Loader<Gpu> {
    /// Decodes a shard of each tensor into the caller's device memory
    /// `outs` (one buffer of the shard's element count per part), after the
    /// work queued so far on the caller's `stream`; complete on return, an
    /// error included (nothing of the load is left running). The thread's
    /// current CUDA context is left as it was.
    ///
    /// # Safety
    /// Each buffer must be device memory of this loader's GPU's context,
    /// valid for writes of `len` elements of `O`, and used by nothing else
    /// until this returns; `stream` must be a live stream of this context
    /// (null: the legacy default stream).
    pub unsafe fn load_into_foreign<O: OutElem>(
        &self,
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
        // SAFETY: nothing in this call destroys a context (cudarc only
        // retains and releases primary ones), and the caller's current one
        // is theirs to keep alive across the call.
        let _kept = unsafe { KeepCurrentContext::new() };
        // SAFETY: a live stream of this context for this call (the caller's
        // promise); the wrapper never destroys it and is dropped before we
        // return.
        let caller = unsafe { self.device().ctx.wrap_borrowed_stream(stream) };
        let ready = caller
            .record_event(None)
            .map_err(|e| Error::cuda("recording an event on the caller's stream", e))?;
        // SAFETY: the buffers as promised by our caller.
        let mut borrowed = unsafe { borrow::<O>(&caller, outs) };
        self.load_parts_into(&ready, file, parts, &mut borrowed.0, &mut |_| {})
    }
}

impl Gpu {
    /// Decodes `src` (whole blocks of `ty`, `src.len` bytes) into `dst`
    /// (`dst.len` elements of `O`), both device memory the caller owns, on
    /// the caller's `stream`: after its work so far and before its later
    /// work, without blocking the host. The thread's current CUDA context is
    /// left as it was.
    ///
    /// # Safety
    /// As [`Loader::load_into_foreign`]: both buffers device memory of this
    /// GPU's context, `src` readable for `src.len` bytes and `dst` writable
    /// for `dst.len` elements of `O`, until the caller's stream has passed
    /// this decode; `stream` a live stream of this context.
    pub unsafe fn dequantize_foreign<O: OutElem>(
        &self,
        stream: super::RawStream,
        ty: crate::types::GgmlType,
        src: ForeignBuffer,
        dst: ForeignBuffer,
    ) -> Result<()> {
        crate::out::check_lengths(ty, src.len, dst.len)?;
        if dst.len == 0 {
            return Ok(());
        }
        if src.ptr == 0 || dst.ptr == 0 {
            return Err(Error::Invalid("a null device pointer".into()));
        }
        // SAFETY: nothing in this call destroys a context (cudarc only
        // retains and releases primary ones), and the caller's current one
        // is theirs to keep alive across the call.
        let _kept = unsafe { KeepCurrentContext::new() };
        // SAFETY: as in `load_into_foreign`.
        let caller = unsafe { self.ctx.wrap_borrowed_stream(stream) };
        // SAFETY: the caller's memory, as promised; leaked, never freed.
        let (src, mut dst) =
            unsafe { (borrow::<u8>(&caller, &[src]), borrow::<O>(&caller, &[dst])) };
        self.dequantize_on(
            &caller,
            ty,
            &src.0[0].as_view(),
            &mut dst.0[0].as_view_mut(),
        )
    }
}
