//! The loader pipeline: a file's compressed blocks go through a few pinned
//! staging buffers to the device and are decoded there, the copy of one chunk
//! overlapping the decode of the one before, host memory bounded by the
//! staging buffers whatever the model's size.
//!
//! It is written once over [`Device`], the few device operations it needs, so
//! that the same code drives a GPU (`gpu::CudaDevice`) and the emulated device
//! (`emulated::EmuDevice`), which runs each stream's operations as late as it
//! may, and reports any operation that runs before what the pipeline should
//! have ordered before it: an ordering mistake here fails `cargo test`.
//!
//! What orders what:
//! 1. An output is allocated in the order of the allocating stream; every slot
//!    stream waits for an event recorded after the allocation before its
//!    first decode into it.
//! 2. A slot's device staging buffer is written by the slot's copy and read by
//!    the slot's decode, both on the slot's stream: stream order. Its next copy
//!    follows that decode on the same stream.
//! 3. A slot's pinned buffer is refilled by the host only once the event
//!    recorded after the slot's last copy out of it has completed.
//! 4. Outputs are handed over after every stream of the load has finished
//!    (host synchronization), so they are whole on any stream afterwards.

use std::ops::Range;
use std::sync::Mutex;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::gguf::{GgufFile, TensorInfo};
use crate::out::OutElem;
use crate::shard::Shard;
use crate::types::GgmlType;

/// The device operations of the pipeline. Every operation taking a stream is
/// asynchronous: it runs in that stream's order, after the stream's earlier
/// operations and the events the stream waits for, and not necessarily before
/// the call returns. Host synchronization ([`Device::synchronize_event`],
/// [`Device::synchronize`]) is the only way to know that one has run.
pub trait Device {
    /// A stream: operations in order.
    type Stream;
    /// A point in a stream's order, to wait for.
    type Event;
    /// Page-locked host memory the device copies from.
    type Pinned;
    /// Device memory holding bytes (staging).
    type Bytes;
    /// Device memory holding decoded elements.
    type Out<O: OutElem>;

    /// A new stream.
    fn new_stream(&self) -> Result<Self::Stream>;
    /// `bytes` of page-locked host memory.
    fn alloc_pinned(&self, bytes: usize) -> Result<Self::Pinned>;
    /// Device bytes, allocated in `stream`'s order.
    fn alloc_bytes(&self, stream: &Self::Stream, bytes: usize) -> Result<Self::Bytes>;
    /// Device memory for `n` elements, allocated in `stream`'s order, its
    /// contents undefined until written.
    fn alloc_out<O: OutElem>(&self, stream: &Self::Stream, n: usize) -> Result<Self::Out<O>>;
    /// The number of elements `out` holds.
    fn out_len<O: OutElem>(&self, out: &Self::Out<O>) -> usize;
    /// Lets `fill` write the first `len` bytes of `pinned`, from the host, now.
    fn fill_pinned(
        &self,
        pinned: &mut Self::Pinned,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> Result<()>,
    ) -> Result<()>;
    /// Copies `rows` of `pinned` to the start of `dst`, packed (row `i` of
    /// `rows.width` bytes from `i * rows.pitch` to `i * rows.width`): one
    /// strided copy, so only the rows' bytes cross the bus.
    fn copy_in(
        &self,
        stream: &Self::Stream,
        pinned: &Self::Pinned,
        dst: &mut Self::Bytes,
        rows: Rows,
    ) -> Result<()>;
    /// Decodes the first `len` bytes of `src` (whole blocks of `ty`) into the
    /// elements `dst_range` of `dst`.
    fn decode<O: OutElem>(
        &self,
        stream: &Self::Stream,
        ty: GgmlType,
        src: &Self::Bytes,
        len: usize,
        dst: &mut Self::Out<O>,
        dst_range: Range<usize>,
    ) -> Result<()>;
    /// Copies `src` to the host in `stream`'s order, and waits for the copy.
    fn copy_out<O: OutElem>(
        &self,
        stream: &Self::Stream,
        src: &Self::Out<O>,
        dst: &mut [O],
    ) -> Result<()>;
    /// An event that completes once `stream`'s operations so far have run.
    fn record(&self, stream: &Self::Stream) -> Result<Self::Event>;
    /// Makes `stream`'s later operations wait for `event`.
    fn wait(&self, stream: &Self::Stream, event: &Self::Event) -> Result<()>;
    /// Blocks the host until `event` has completed.
    fn synchronize_event(&self, event: &Self::Event) -> Result<()>;
    /// Blocks the host until every operation of `stream` has run.
    fn synchronize(&self, stream: &Self::Stream) -> Result<()>;
}

/// `height` rows of `width` bytes, `pitch` bytes apart, in a staging buffer:
/// a 2-D copy, or a plain one of `width` bytes where `height` is 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rows {
    /// Bytes from one row's start to the next's in the source.
    pub pitch: usize,
    /// Bytes of each row that are copied.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

impl Rows {
    /// `len` contiguous bytes.
    pub fn plain(len: usize) -> Rows {
        Rows {
            pitch: len,
            width: len,
            height: 1,
        }
    }
    /// Bytes the rows span in the source: the last row ends at `width`.
    pub fn span(&self) -> usize {
        self.height.saturating_sub(1) * self.pitch + self.width
    }
    /// Bytes that cross the bus.
    pub fn packed(&self) -> usize {
        self.width * self.height
    }
    /// An error unless the rows lie within `src` bytes and, packed, fit in
    /// `dst` bytes, their pitch at least their width.
    pub fn check(&self, src: usize, dst: usize) -> Result<()> {
        let span = self.height.checked_sub(1).map_or(Some(0), |h| {
            h.checked_mul(self.pitch)?.checked_add(self.width)
        });
        let packed = self.width.checked_mul(self.height);
        match (span, packed) {
            (Some(span), Some(packed))
                if self.pitch >= self.width && span <= src && packed <= dst =>
            {
                Ok(())
            }
            _ => Err(Error::Length(format!(
                "copying {self:?} from a staging buffer of {src} bytes into {dst}"
            ))),
        }
    }
}

/// How a load stages the file: built from [`LoadOptions::default`] with
/// the `with_` methods (non-exhaustive: a field added under a feature
/// breaks no struct literal downstream).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Bytes per pinned staging buffer (at least 64 KiB).
    pub chunk_bytes: usize,
    /// Staging buffers, one stream each (at least two, for overlap).
    pub streams: usize,
    /// Test-only: leave out one of the orderings above, to show that the
    /// emulated device catches its absence.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub skip: Option<Ordering>,
}

/// An ordering of the pipeline, to leave out on purpose (tests only, with the
/// `fault-injection` feature).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering {
    /// Slot streams do not wait for the allocation of the output.
    AllocationBeforeDecode,
    /// The host refills a pinned buffer without waiting for its last copy.
    CopyBeforeRefill,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            chunk_bytes: 32 << 20,
            streams: 3,
            #[cfg(feature = "fault-injection")]
            skip: None,
        }
    }
}

impl LoadOptions {
    /// These options with `bytes` per pinned staging buffer.
    pub fn with_chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes;
        self
    }

    /// These options with `streams` staging buffers, one stream each.
    pub fn with_streams(mut self, streams: usize) -> Self {
        self.streams = streams;
        self
    }

    /// These options leaving out `skip` (tests only).
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn with_skip(mut self, skip: Option<Ordering>) -> Self {
        self.skip = skip;
        self
    }

    fn skips(&self, ordering: Ordering) -> bool {
        #[cfg(feature = "fault-injection")]
        return self.skip == Some(ordering);
        #[cfg(not(feature = "fault-injection"))]
        {
            let _ = ordering;
            false
        }
    }
}

/// What a load moved and how long it took.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Compressed bytes that crossed the bus.
    pub compressed_bytes: u64,
    /// Decoded bytes written in device memory.
    pub output_bytes: u64,
    /// Wall time of the load, seconds.
    pub seconds: f64,
}

struct Slot<D: Device> {
    stream: D::Stream,
    pinned: D::Pinned,
    staging: D::Bytes,
    /// Recorded after the last copy out of `pinned`: refill only once it completes.
    copied: Option<D::Event>,
}

/// A device, the stream its outputs are allocated in, and its staging: the
/// one way the crate loads tensors onto a device (the CLI, candle, Python and
/// [`crate::parallel::ModelLoad`] all go through it). Made once and reused
/// load after load, since page-locked memory is slow to allocate; one load at
/// a time (a second caller waits for the first).
pub struct Loader<D: Device> {
    dev: D,
    stream: D::Stream,
    staging: Mutex<Staging<D>>,
}

impl<D: Device> Loader<D> {
    /// Allocates the staging buffers (a stream each) on `dev`; outputs will
    /// be allocated in `stream`'s order.
    pub fn new(dev: D, stream: D::Stream, opts: &LoadOptions) -> Result<Self> {
        let staging = Mutex::new(Staging::new(&dev, opts)?);
        Ok(Loader {
            dev,
            stream,
            staging,
        })
    }

    /// The device loads run on.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// The stream outputs are allocated in.
    pub fn stream(&self) -> &D::Stream {
        &self.stream
    }

    fn staging(&self) -> std::sync::MutexGuard<'_, Staging<D>> {
        // a panic mid-load unwinds only after every slot stream drained
        // (`Staging::drained`): the staging is reusable
        self.staging.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decodes `tensors` of `file` into device memory as `O`, allocating the
    /// outputs in the loader's stream's order; returns them in order,
    /// complete (every stream of the load finished). `progress` is called
    /// with the compressed bytes done so far.
    pub fn load<O: OutElem>(
        &self,
        file: &GgufFile,
        tensors: &[&TensorInfo],
        progress: &mut dyn FnMut(u64),
    ) -> Result<(Vec<D::Out<O>>, LoadReport)> {
        let parts: Vec<(&TensorInfo, Shard)> =
            tensors.iter().map(|t| (*t, Shard::whole(t))).collect();
        self.load_parts(file, &parts, progress)
    }

    /// Decodes a shard of each tensor into device memory as `O` (`rows x
    /// cols` values, row-major), as [`Loader::load`]: only the shards'
    /// compressed bytes cross the bus; a column shard's rows are read from the
    /// file whole rows at a time and copied with one strided copy.
    pub fn load_parts<O: OutElem>(
        &self,
        file: &GgufFile,
        parts: &[(&TensorInfo, Shard)],
        progress: &mut dyn FnMut(u64),
    ) -> Result<(Vec<D::Out<O>>, LoadReport)> {
        self.staging()
            .load_parts(&self.dev, &self.stream, file, parts, progress)
    }

    /// Decodes a shard of each tensor into `outs`, device memory the caller
    /// owns (an engine's allocator's), one output of the shard's element
    /// count per part; no decode writes before `ready` (an event the caller
    /// recorded where the outputs may be written, e.g. on the stream that
    /// allocated them) has completed. The outputs are complete on return.
    pub fn load_parts_into<O: OutElem>(
        &self,
        ready: &D::Event,
        file: &GgufFile,
        parts: &[(&TensorInfo, Shard)],
        outs: &mut [D::Out<O>],
        progress: &mut dyn FnMut(u64),
    ) -> Result<LoadReport> {
        self.staging()
            .load_parts_into(&self.dev, ready, file, parts, outs, progress)
    }

    /// Decodes `shard` of tensor `t` of `file` on the device into host
    /// memory `out` (`rows x cols` values, row-major).
    pub fn decode_part<O: OutElem>(
        &self,
        file: &GgufFile,
        t: &TensorInfo,
        shard: &Shard,
        out: &mut [O],
    ) -> Result<()> {
        let (outs, _) = self.load_parts::<O>(file, &[(t, shard.clone())], &mut |_| {})?;
        self.dev
            .copy_out(&self.stream, &outs[0], out)
            .map_err(|e| e.for_tensor(&t.name))
    }
}

/// The staging buffers and streams of a [`Loader`].
struct Staging<D: Device> {
    slots: Vec<Slot<D>>,
    chunk: usize,
    opts: LoadOptions,
    /// The slot the next chunk goes through.
    next: usize,
}

impl<D: Device> Staging<D> {
    /// Allocates the staging buffers on `dev`, with a stream each.
    fn new(dev: &D, opts: &LoadOptions) -> Result<Self> {
        let chunk = opts.chunk_bytes.max(64 << 10);
        let slots = (0..opts.streams.max(2))
            .map(|_| {
                let stream = dev.new_stream()?;
                let pinned = dev.alloc_pinned(chunk)?;
                let staging = dev.alloc_bytes(&stream, chunk)?;
                Ok(Slot::<D> {
                    stream,
                    pinned,
                    staging,
                    copied: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Staging {
            slots,
            chunk,
            opts: opts.clone(),
            next: 0,
        })
    }

    /// [`Loader::load_parts`], outputs allocated in `alloc_stream`'s order.
    fn load_parts<O: OutElem>(
        &mut self,
        dev: &D,
        alloc_stream: &D::Stream,
        file: &GgufFile,
        parts: &[(&TensorInfo, Shard)],
        progress: &mut dyn FnMut(u64),
    ) -> Result<(Vec<D::Out<O>>, LoadReport)> {
        check_parts(parts)?;
        let start = Instant::now();
        let mut outputs = Vec::with_capacity(parts.len());
        let mut done = 0u64;
        let drained = self.drained(dev, |p| {
            for (t, shard) in parts {
                let mut out = dev
                    .alloc_out::<O>(alloc_stream, elems(t, shard)?)
                    .map_err(|e| e.for_tensor(&t.name))?;
                let allocated = dev.record(alloc_stream)?;
                let queued = p.queue_part(dev, &allocated, file, t, shard, &mut out, &mut |d| {
                    progress(done + d)
                });
                // queued in part or whole: freed only after the slots drained
                outputs.push(out);
                done += queued?;
            }
            Ok(())
        });
        let synced = dev.synchronize(alloc_stream);
        drained?;
        synced?;
        Ok((outputs, report::<O>(parts, done, start)))
    }

    /// [`Loader::load_parts_into`].
    fn load_parts_into<O: OutElem>(
        &mut self,
        dev: &D,
        ready: &D::Event,
        file: &GgufFile,
        parts: &[(&TensorInfo, Shard)],
        outs: &mut [D::Out<O>],
        progress: &mut dyn FnMut(u64),
    ) -> Result<LoadReport> {
        check_parts(parts)?;
        if outs.len() != parts.len() {
            return Err(Error::Length(format!(
                "{} outputs for {} tensors",
                outs.len(),
                parts.len()
            )));
        }
        for ((t, shard), out) in parts.iter().zip(outs.iter()) {
            let (want, have) = (elems(t, shard)?, dev.out_len(out));
            if want != have {
                return Err(Error::Length(format!(
                    "tensor '{}': {want} elements into an output of {have}",
                    t.name
                )));
            }
        }
        let start = Instant::now();
        let mut done = 0u64;
        self.drained(dev, |p| {
            for ((t, shard), out) in parts.iter().zip(outs.iter_mut()) {
                done +=
                    p.queue_part(dev, ready, file, t, shard, out, &mut |d| progress(done + d))?;
            }
            Ok(())
        })?;
        Ok(report::<O>(parts, done, start))
    }

    /// Queues one shard's copies and decodes into `out`, after `ready`; the
    /// output is complete only after [`Staging::finish`]. Returns the bytes
    /// copied.
    #[allow(clippy::too_many_arguments)]
    fn queue_part<O: OutElem>(
        &mut self,
        dev: &D,
        ready: &D::Event,
        file: &GgufFile,
        t: &TensorInfo,
        shard: &Shard,
        out: &mut D::Out<O>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let (qk, bb) = (t.ty.block_elems(), t.ty.block_bytes());
        let mut done = 0u64;
        let mut e0 = 0;
        for (at, rows) in pieces(t, shard, self.chunk).map_err(|e| e.for_tensor(&t.name))? {
            let n_slots = self.slots.len();
            let slot = &mut self.slots[self.next % n_slots];
            self.next += 1;
            if let Some(ev) = slot.copied.take() {
                if !self.opts.skips(Ordering::CopyBeforeRefill) {
                    dev.synchronize_event(&ev)?;
                }
            }
            // read from the file, not a mapping: a file that shrinks is an error
            dev.fill_pinned(&mut slot.pinned, rows.span(), &mut |buf| {
                file.read_tensor(t, at, buf)
            })?;
            dev.copy_in(&slot.stream, &slot.pinned, &mut slot.staging, rows)
                .map_err(|e| e.for_tensor(&t.name))?;
            slot.copied = Some(dev.record(&slot.stream)?);
            if !self.opts.skips(Ordering::AllocationBeforeDecode) {
                dev.wait(&slot.stream, ready)?;
            }
            let len = rows.packed();
            let e1 = e0 + len / bb * qk;
            dev.decode(&slot.stream, t.ty, &slot.staging, len, out, e0..e1)
                .map_err(|e| e.for_tensor(&t.name))?;
            e0 = e1;
            done += len as u64;
            progress(done);
        }
        Ok(done)
    }

    /// Runs `queue` (which queues a load's copies and decodes on the slot
    /// streams), then waits for every slot stream whatever happened, an error
    /// or a panic included, before returning (or resuming the panic): no copy
    /// or decode of the load is left to run when the caller, who may free or
    /// reuse the outputs and the staging, gets control back.
    fn drained(&mut self, dev: &D, queue: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        let queued = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| queue(self)));
        let finished = self.finish(dev);
        match queued {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(queued) => queued.and(finished),
        }
    }

    /// Waits for every slot stream of the loads so far, all of them also
    /// when one fails; the first error is the one returned.
    fn finish(&mut self, dev: &D) -> Result<()> {
        let mut first = Ok(());
        for s in &self.slots {
            let r = dev.synchronize(&s.stream);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

/// Refuses, before anything is allocated or moved, a part that cannot be
/// decoded or whose shard does not fit its tensor.
fn check_parts(parts: &[(&TensorInfo, Shard)]) -> Result<()> {
    for (t, shard) in parts {
        t.check_decodable()?;
        shard.check(&t.name, t.ty, &t.ne)?;
    }
    Ok(())
}

/// A shard's element count, as a size.
fn elems(t: &TensorInfo, shard: &Shard) -> Result<usize> {
    usize::try_from(shard.n_elems()).map_err(|_| {
        Error::Length(format!(
            "tensor '{}': {} elements do not fit in memory",
            t.name,
            shard.n_elems()
        ))
    })
}

fn report<O>(parts: &[(&TensorInfo, Shard)], compressed_bytes: u64, start: Instant) -> LoadReport {
    LoadReport {
        compressed_bytes,
        output_bytes: parts
            .iter()
            .map(|(_, s)| s.n_elems() * std::mem::size_of::<O>() as u64)
            .sum(),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// The pieces a shard of `t` goes through staging buffers of `chunk` bytes
/// in: where each starts in the tensor's data, and its rows. Whole rows are
/// one contiguous range cut into chunks of whole blocks; a column shard is
/// as many rows as fit a chunk (`pitch` the tensor's row, `width` the
/// shard's part of it), or, where one row's part does not fit, that part cut
/// into chunks of whole blocks.
fn pieces(t: &TensorInfo, shard: &Shard, chunk: usize) -> Result<Vec<(u64, Rows)>> {
    let as_size = |v: u64| {
        usize::try_from(v).map_err(|_| Error::Length(format!("{v} bytes do not fit in memory")))
    };
    let bb = t.ty.block_bytes() as u64;
    let chunk = (chunk as u64 / bb).max(1) * bb;
    let ranges = shard.byte_ranges(t.ty, &t.ne);
    let row_pitch =
        t.ty.bytes_for(t.ne.first().copied().unwrap_or(1))
            .unwrap_or(0);
    let width = ranges.first().map_or(0, |r| r.end - r.start);
    let mut out = Vec::new();
    if ranges.len() > 1 && width > 0 && width <= chunk {
        // k rows of the shard span (k - 1) * pitch + width bytes
        let per = ((chunk - width) / row_pitch.max(1) + 1) as usize;
        for group in ranges.chunks(per) {
            let rows = Rows {
                pitch: as_size(row_pitch)?,
                width: as_size(width)?,
                height: group.len(),
            };
            out.push((group[0].start, rows));
        }
    } else {
        for r in ranges {
            let mut at = r.start;
            while at < r.end {
                let len = (r.end - at).min(chunk);
                out.push((at, Rows::plain(as_size(len)?)));
                at += len;
            }
        }
    }
    Ok(out)
}
