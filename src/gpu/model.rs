//! A whole GGUF model onto the GPU at bus speed.
//!
//! Compressed blocks cross the bus (2 to 8 bits a weight, not 16) and are
//! decoded in device memory. The file is memory-mapped; chunks of whole blocks go
//! through a few pinned staging buffers, each with its own stream, so that the
//! copy of one chunk overlaps the decode of the one before. Host memory stays at
//! the staging buffers, whatever the model's size.

use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{CudaEvent, CudaSlice, CudaStream, PinnedHostSlice};

use super::{cuda_err, Gpu};
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::out::OutElem;
use crate::types::GgmlType;

/// How [`Gpu::load_model`] stages the file.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Bytes per pinned staging buffer.
    pub chunk_bytes: usize,
    /// Staging buffers, one stream each (at least two, for overlap).
    pub streams: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            chunk_bytes: 32 << 20,
            streams: 3,
        }
    }
}

/// One decoded tensor in device memory.
pub struct DeviceTensor<O> {
    pub name: String,
    /// The type it was stored in.
    pub source_type: GgmlType,
    /// Row-major shape (ggml's ne reversed).
    pub shape: Vec<u64>,
    pub data: CudaSlice<O>,
}

/// Every tensor of a file, decoded on the device.
pub struct DeviceModel<O> {
    pub tensors: Vec<DeviceTensor<O>>,
}

/// What a load moved and how long it took.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Compressed bytes that crossed the bus.
    pub compressed_bytes: u64,
    /// Decoded bytes written in device memory.
    pub output_bytes: u64,
    pub seconds: f64,
}

struct Slot {
    stream: Arc<CudaStream>,
    pinned: PinnedHostSlice<u8>,
    device: CudaSlice<u8>,
    /// Recorded after the last copy out of `pinned`: refill only once it completes.
    copied: Option<CudaEvent>,
}

impl Gpu {
    /// Decodes every tensor of `file` into device memory as `O`.
    /// `progress` is called with the compressed bytes done so far.
    pub fn load_model<O: OutElem>(
        &self,
        file: &GgufFile,
        opts: &LoadOptions,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(DeviceModel<O>, LoadReport)> {
        // Refuse what cannot be decoded before allocating anything.
        for t in file.tensors() {
            if !t.ty.is_dequantizable() {
                return Err(Error::Unsupported {
                    tensor: Some(t.name.clone()),
                    ty: t.ty,
                });
            }
        }
        let start = Instant::now();
        let chunk = opts.chunk_bytes.max(1 << 16);
        let mut slots = (0..opts.streams.max(2))
            .map(|_| {
                let stream = self
                    .ctx
                    .new_stream()
                    .map_err(|e| cuda_err("creating a stream", e))?;
                // SAFETY: staging memory is written before it is copied.
                let pinned = unsafe { self.ctx.alloc_pinned::<u8>(chunk) }
                    .map_err(|e| cuda_err("allocating pinned staging memory", e))?;
                // SAFETY: uninitialized device bytes; the kernels read only the
                // `part.len()` bytes each chunk's copy from `pinned` has just written.
                let device = unsafe { stream.alloc::<u8>(chunk) }
                    .map_err(|e| cuda_err("allocating device staging memory", e))?;
                Ok(Slot {
                    stream,
                    pinned,
                    device,
                    copied: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;

        let mut tensors = Vec::with_capacity(file.tensors().len());
        let (mut done, mut out_bytes, mut next) = (0u64, 0u64, 0usize);
        for t in file.tensors() {
            let data = file.tensor_data(t)?;
            let n = usize::try_from(t.n_elems)
                .map_err(|_| Error::Length(format!("tensor '{}' is too large", t.name)))?;
            // SAFETY: every element is written by the kernels below before use.
            let mut out = unsafe { self.stream.alloc::<O>(n) }.map_err(|e| {
                cuda_err(
                    &format!("allocating {} elements for tensor '{}'", n, t.name),
                    e,
                )
            })?;
            let (qk, bb) = (t.ty.block_elems(), t.ty.block_bytes());
            let blocks_per_chunk = (chunk / bb).max(1);
            for (ci, part) in data.chunks(blocks_per_chunk * bb).enumerate() {
                let slot = &mut slots[next % opts.streams.max(2)];
                next += 1;
                if let Some(ev) = slot.copied.take() {
                    ev.synchronize()
                        .map_err(|e| cuda_err("waiting for a staging buffer", e))?;
                }
                let host = slot
                    .pinned
                    .as_mut_slice()
                    .map_err(|e| cuda_err("staging", e))?;
                host[..part.len()].copy_from_slice(part);
                let mut dev = slot.device.slice_mut(..part.len());
                slot.stream
                    .memcpy_htod(&host[..part.len()], &mut dev)
                    .map_err(|e| cuda_err(&format!("copying tensor '{}'", t.name), e))?;
                slot.copied = Some(
                    slot.stream
                        .record_event(None)
                        .map_err(|e| cuda_err("recording an event", e))?,
                );
                let e0 = ci * blocks_per_chunk * qk;
                let e1 = e0 + part.len() / bb * qk;
                let stream = slot.stream.clone();
                self.dequantize_on(
                    &stream,
                    t.ty,
                    &slot.device.slice(..part.len()),
                    &mut out.slice_mut(e0..e1),
                )
                .map_err(|e| e.for_tensor(&t.name))?;
                done += part.len() as u64;
                progress(done);
            }
            out_bytes += (n * std::mem::size_of::<O>()) as u64;
            tensors.push(DeviceTensor {
                name: t.name.clone(),
                source_type: t.ty,
                shape: t.shape_row_major(),
                data: out,
            });
        }
        for s in &slots {
            s.stream
                .synchronize()
                .map_err(|e| cuda_err("finishing the load", e))?;
        }
        self.synchronize()?;
        let report = LoadReport {
            compressed_bytes: done,
            output_bytes: out_bytes,
            seconds: start.elapsed().as_secs_f64(),
        };
        Ok((DeviceModel { tensors }, report))
    }
}
