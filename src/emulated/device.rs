//! The emulated device: the pipeline's [`Device`] on the host, running the
//! same kernels as the emulated grid, with streams that run as late as they
//! may.
//!
//! A GPU runs a stream's operations asynchronously, in an order that timing
//! decides: a missing event wait may go unnoticed for years and then corrupt
//! a model on a faster card. Worker threads would reproduce that only on
//! unlucky timings. This device is adversarial instead, and deterministic: an
//! operation is queued on its stream and runs only when the host waits for it
//! (an event, a stream) or a stream that must run after it does; everything
//! else stays pending. So whatever the pipeline forgot to order runs in the
//! wrong order on every run:
//! - device memory is poisoned (all bits set: NaN in every output type) when
//!   its allocation runs, and an operation touching memory whose allocation
//!   has not run yet is an error naming both streams;
//! - a copy reads pinned memory when it runs, so a host refill that did not
//!   wait for the copy is what the copy sends;
//! - decodes check alignment as the GPU does, and a misaligned access fails
//!   the launch as it would there.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Mutex;

use super::{launch_chunks, DeviceBytes};
use crate::error::{CudaError, CudaErrorKind, Error, Result};
use crate::kernels::{check_alignment, MAX_GRID};
use crate::out::check_lengths;
use crate::out::OutElem;
use crate::pipeline::{Device, Rows};
use crate::types::GgmlType;

/// A stream of the emulated device.
#[derive(Debug)]
pub struct EmuStream(usize);

/// An event of the emulated device.
#[derive(Debug)]
pub struct EmuEvent(usize);

/// Pinned host memory of the emulated device.
#[derive(Debug)]
pub struct EmuPinned(usize);

/// Device bytes of the emulated device.
#[derive(Debug)]
pub struct EmuBytes {
    region: usize,
    len: usize,
}

/// Decoded elements in the emulated device's memory.
#[derive(Debug)]
pub struct EmuOut<O> {
    region: usize,
    len: usize,
    out: PhantomData<O>,
}

impl<O> EmuOut<O> {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One allocation of device memory.
struct Region {
    mem: DeviceBytes,
    /// The stream whose allocation of it has not run yet.
    pending_on: Option<usize>,
}

enum Op {
    Alloc {
        region: usize,
    },
    CopyIn {
        pinned: usize,
        region: usize,
        rows: Rows,
    },
    Decode {
        decode: DecodeOp,
    },
    Record {
        event: usize,
    },
    Wait {
        event: usize,
    },
}

struct DecodeOp {
    ty: GgmlType,
    src: usize,
    len: usize,
    dst: usize,
    /// Byte range of the output region.
    dst_bytes: Range<usize>,
    /// Runs the kernels over `(src, dst)` bytes.
    run: fn(GgmlType, &[u8], &mut [u8]) -> Result<()>,
}

#[derive(Default)]
struct State {
    streams: Vec<VecDeque<Op>>,
    /// The stream each event was recorded on, and whether it has completed.
    events: Vec<(usize, bool)>,
    regions: Vec<Region>,
    pinned: Vec<Vec<u8>>,
    /// Bytes copied to the device so far.
    copied_in: u64,
}

/// The emulated device (see the module documentation).
#[derive(Default)]
pub struct EmuDevice {
    state: Mutex<State>,
}

impl EmuDevice {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes copied from the host to the device so far (by copies that ran).
    pub fn bytes_copied_in(&self) -> u64 {
        self.state().copied_in
    }

    /// Operations queued on its streams that have not run yet (the device
    /// runs them as late as it may: a pipeline that returns while some are
    /// queued leaves work touching memory its caller may free).
    pub fn queued_ops(&self) -> usize {
        self.state().streams.iter().map(VecDeque::len).sum()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enqueue(&self, stream: &EmuStream, op: Op) {
        self.state().streams[stream.0].push_back(op);
    }

    /// A device allocation of `bytes`, as the driver's `cuMemAlloc`: zero
    /// bytes are refused.
    fn new_region(&self, stream: &EmuStream, bytes: usize) -> Result<usize> {
        if bytes == 0 {
            return Err(CudaError::new(
                CudaErrorKind::Other,
                "CUDA_ERROR_INVALID_VALUE: an allocation of 0 bytes (emulated)",
            )
            .into());
        }
        let mut st = self.state();
        // the memory itself exists from now on; it is poisoned when the
        // allocation runs
        st.regions.push(Region {
            mem: DeviceBytes::zeroed(bytes)?,
            pending_on: Some(stream.0),
        });
        let region = st.regions.len() - 1;
        st.streams[stream.0].push_back(Op::Alloc { region });
        Ok(region)
    }
}

fn unordered(what: &str, stream: usize, alloc_stream: usize) -> Error {
    Error::from(CudaError::new(
        CudaErrorKind::LaunchFailed,
        format!(
            "emulated device: {what} on stream {stream} touched memory whose allocation \
             on stream {alloc_stream} had not run (an event wait is missing)"
        ),
    ))
}

impl State {
    /// Runs the first pending operation of `stream`, after what it waits for.
    fn step(&mut self, stream: usize, depth: usize) -> Result<()> {
        if depth > self.streams.len() + 1 {
            return Err(CudaError::new(
                CudaErrorKind::Other,
                "emulated device: streams wait for each other in a cycle",
            )
            .into());
        }
        if let Some(Op::Wait { event }) = self.streams[stream].front() {
            let event = *event;
            self.complete(event, depth + 1)?;
        }
        let Some(op) = self.streams[stream].pop_front() else {
            return Ok(());
        };
        match op {
            Op::Alloc { region } => {
                let r = &mut self.regions[region];
                r.pending_on = None;
                r.mem.bytes_mut().fill(0xff);
            }
            Op::CopyIn {
                pinned,
                region,
                rows,
            } => {
                if let Some(s) = self.regions[region].pending_on {
                    return Err(unordered("a copy to the device", stream, s));
                }
                let (src, r) = (&self.pinned[pinned], &mut self.regions[region]);
                let dst = r.mem.bytes_mut();
                for i in 0..rows.height {
                    let (from, to) = (i * rows.pitch, i * rows.width);
                    dst[to..to + rows.width].copy_from_slice(&src[from..from + rows.width]);
                }
                self.copied_in += rows.packed() as u64;
            }
            Op::Decode { decode: d } => {
                for region in [d.src, d.dst] {
                    if let Some(s) = self.regions[region].pending_on {
                        return Err(unordered("a decode", stream, s));
                    }
                }
                let mut dst = std::mem::take(&mut self.regions[d.dst].mem);
                let src = &self.regions[d.src].mem.bytes()[..d.len];
                let res = (d.run)(d.ty, src, &mut dst.bytes_mut()[d.dst_bytes.clone()]);
                self.regions[d.dst].mem = dst;
                res?;
            }
            Op::Record { event } => self.events[event].1 = true,
            Op::Wait { .. } => {} // completed above
        }
        Ok(())
    }

    /// Runs `event`'s stream until the event has completed.
    fn complete(&mut self, event: usize, depth: usize) -> Result<()> {
        let stream = self.events[event].0;
        while !self.events[event].1 {
            self.step(stream, depth)?;
        }
        Ok(())
    }
}

/// Decodes `src` into the bytes of `O` elements `dst` as a GPU launch would:
/// alignment checked as [`crate::gpu::Gpu::dequantize_on`] checks it, then
/// the launches with no copy in between.
fn decode_bytes<O: OutElem>(ty: GgmlType, src: &[u8], dst: &mut [u8]) -> Result<()> {
    let dst = bytes_as_out::<O>(dst)?;
    check_lengths(ty, src.len(), dst.len())?;
    let (src_ptr, dst_ptr) = (src.as_ptr() as u64, dst.as_ptr() as u64);
    check_alignment(ty, src_ptr, dst_ptr, std::mem::size_of::<O>())?;
    let aligned16 = src_ptr % 16 == 0 && dst_ptr % 16 == 0;
    launch_chunks(ty, src, dst, MAX_GRID, aligned16)
}

/// Device bytes as the output elements they hold: an error where they are not
/// aligned for `O` (the kernels would fault).
fn bytes_as_out<O: OutElem>(bytes: &mut [u8]) -> Result<&mut [O]> {
    let size = std::mem::size_of::<O>();
    if !(bytes.as_ptr() as usize).is_multiple_of(size) || !bytes.len().is_multiple_of(size) {
        return Err(CudaError::new(
            CudaErrorKind::LaunchFailed,
            format!(
                "CUDA_ERROR_MISALIGNED_ADDRESS: output at {:p} is not {size}-byte aligned \
                 (emulated)",
                bytes.as_ptr()
            ),
        )
        .into());
    }
    // SAFETY: aligned for O and a whole number of them (checked above); every
    // bit pattern is a valid f32, f16 or bf16 (O is sealed to those).
    Ok(unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), bytes.len() / size) })
}

impl Device for EmuDevice {
    type Stream = EmuStream;
    type Event = EmuEvent;
    type Pinned = EmuPinned;
    type Bytes = EmuBytes;
    type Out<O: OutElem> = EmuOut<O>;

    fn new_stream(&self) -> Result<EmuStream> {
        let mut st = self.state();
        st.streams.push(VecDeque::new());
        Ok(EmuStream(st.streams.len() - 1))
    }

    fn alloc_pinned(&self, bytes: usize) -> Result<EmuPinned> {
        let mut st = self.state();
        st.pinned.push(vec![0; bytes]);
        Ok(EmuPinned(st.pinned.len() - 1))
    }

    fn alloc_bytes(&self, stream: &EmuStream, bytes: usize) -> Result<EmuBytes> {
        // as the GPU's: an empty buffer is one byte presented as empty
        Ok(EmuBytes {
            region: self.new_region(stream, bytes.max(1))?,
            len: bytes,
        })
    }

    fn alloc_out<O: OutElem>(&self, stream: &EmuStream, n: usize) -> Result<EmuOut<O>> {
        let bytes = n.checked_mul(std::mem::size_of::<O>()).ok_or_else(|| {
            CudaError::new(
                CudaErrorKind::OutOfMemory,
                "CUDA_ERROR_OUT_OF_MEMORY: output too large (emulated)",
            )
        })?;
        // as the GPU's: an empty output is one element presented as empty
        Ok(EmuOut {
            region: self.new_region(stream, bytes.max(std::mem::size_of::<O>()))?,
            len: n,
            out: PhantomData,
        })
    }

    fn out_len<O: OutElem>(&self, out: &EmuOut<O>) -> usize {
        out.len
    }

    fn fill_pinned(
        &self,
        pinned: &mut EmuPinned,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<()>,
    ) -> Result<()> {
        let mut st = self.state();
        let p = &mut st.pinned[pinned.0];
        let have = p.len();
        let buf = p
            .get_mut(..len)
            .ok_or_else(|| Error::Length(format!("{len} bytes into a staging buffer of {have}")))?;
        fill(buf)
    }

    fn copy_in(
        &self,
        stream: &EmuStream,
        pinned: &EmuPinned,
        dst: &mut EmuBytes,
        rows: Rows,
    ) -> Result<()> {
        let have = self.state().pinned[pinned.0].len();
        rows.check(have, dst.len)?;
        self.enqueue(
            stream,
            Op::CopyIn {
                pinned: pinned.0,
                region: dst.region,
                rows,
            },
        );
        Ok(())
    }

    fn decode<O: OutElem>(
        &self,
        stream: &EmuStream,
        ty: GgmlType,
        src: &EmuBytes,
        len: usize,
        dst: &mut EmuOut<O>,
        dst_range: Range<usize>,
    ) -> Result<()> {
        if len > src.len || dst_range.start > dst_range.end || dst_range.end > dst.len {
            return Err(Error::Length(format!(
                "decoding {len} bytes into elements {dst_range:?} of {}",
                dst.len
            )));
        }
        // checked now, as the GPU launcher checks before launching
        check_lengths(ty, len, dst_range.len())?;
        if let Some(e) = super::fault::injected() {
            return Err(e);
        }
        let size = std::mem::size_of::<O>();
        self.enqueue(
            stream,
            Op::Decode {
                decode: DecodeOp {
                    ty,
                    src: src.region,
                    len,
                    dst: dst.region,
                    dst_bytes: dst_range.start * size..dst_range.end * size,
                    run: decode_bytes::<O>,
                },
            },
        );
        Ok(())
    }

    /// Copies `out` to the host, in `stream`'s order: waits for the stream,
    /// then reads (memory whose allocation has not run is an error).
    fn copy_out<O: OutElem>(
        &self,
        stream: &EmuStream,
        src: &EmuOut<O>,
        dst: &mut [O],
    ) -> Result<()> {
        if dst.len() != src.len {
            return Err(Error::Length(format!(
                "copying {} elements into a host buffer of {}",
                src.len,
                dst.len()
            )));
        }
        self.synchronize(stream)?;
        let st = self.state();
        let region = &st.regions[src.region];
        if let Some(s) = region.pending_on {
            return Err(unordered("a copy to the host", stream.0, s));
        }
        let n = std::mem::size_of_val(dst);
        crate::out::as_bytes_mut(dst).copy_from_slice(&region.mem.bytes()[..n]);
        Ok(())
    }

    fn record(&self, stream: &EmuStream) -> Result<EmuEvent> {
        let mut st = self.state();
        st.events.push((stream.0, false));
        let event = st.events.len() - 1;
        st.streams[stream.0].push_back(Op::Record { event });
        Ok(EmuEvent(event))
    }

    fn wait(&self, stream: &EmuStream, event: &EmuEvent) -> Result<()> {
        self.enqueue(stream, Op::Wait { event: event.0 });
        Ok(())
    }

    fn synchronize_event(&self, event: &EmuEvent) -> Result<()> {
        self.state().complete(event.0, 0)
    }

    fn synchronize(&self, stream: &EmuStream) -> Result<()> {
        let mut st = self.state();
        while !st.streams[stream.0].is_empty() {
            st.step(stream.0, 0)?;
        }
        Ok(())
    }
}
