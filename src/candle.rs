//! GGUF tensors as candle tensors (feature `candle`).
//!
//! candle decodes GGUF on its CUDA device only for the legacy and K-quant
//! types, and never into bf16. This module decodes any of the 28 types into a
//! [`candle_core::Tensor`] of f32, f16 or bf16, row-major (ggml's `ne`
//! reversed), on candle's own device:
//! - [`Device::Cpu`]: by the CPU fast path, into a buffer the tensor then owns
//!   (no copy);
//! - a CUDA device (feature `candle-cuda`): the compressed blocks go through
//!   the loader pipeline to the GPU and are decoded there by this crate's
//!   kernels, in candle's context and allocated in the order of candle's
//!   stream; the device buffers become candle's storage without a copy.
//!
//! ```no_run
//! # fn main() -> gguf_dequant::Result<()> {
//! use candle_core::{DType, Device};
//! let file = gguf_dequant::gguf::GgufFile::open("model.gguf")?;
//! let weights = gguf_dequant::candle::load(&file, DType::BF16, &Device::Cpu, |_| true)?;
//! let embeddings = &weights["token_embd.weight"]; // [vocab, hidden]
//! # let _ = embeddings; Ok(()) }
//! ```
//!
//! Shards ([`crate::shard`]) come out as their own tensors: `[rows, cols]`
//! (or the tensor's shape when the shard is all of it).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::gguf::{GgufFile, TensorInfo};
use crate::out::OutElem;
use crate::shard::Shard;
use crate::types::OutType;

/// One part of a tensor to decode: the tensor and its shard.
pub type Part<'a> = (&'a TensorInfo, Shard);

/// Decodes tensor `t` of `file` into a `dtype` tensor on `device`.
pub fn tensor(file: &GgufFile, t: &TensorInfo, dtype: DType, device: &Device) -> Result<Tensor> {
    shard(file, t, &Shard::whole(t), dtype, device)
}

/// Decodes shard `s` of tensor `t` into a `dtype` tensor on `device`.
pub fn shard(
    file: &GgufFile,
    t: &TensorInfo,
    s: &Shard,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let mut v = parts(file, &[(t, s.clone())], dtype, device)?;
    Ok(v.remove(0))
}

/// Decodes every tensor of `file` that `select` accepts into `dtype` tensors on
/// `device`, by name. Arguments in candle's order: the dtype, then the device.
pub fn load(
    file: &GgufFile,
    dtype: DType,
    device: &Device,
    mut select: impl FnMut(&TensorInfo) -> bool,
) -> Result<HashMap<String, Tensor>> {
    let chosen: Vec<Part> = file
        .tensors()
        .iter()
        .filter(|t| select(t))
        .map(|t| (t, Shard::whole(t)))
        .collect();
    let tensors = parts(file, &chosen, dtype, device)?;
    Ok(chosen
        .iter()
        .map(|(t, _)| t.name.clone())
        .zip(tensors)
        .collect())
}

/// Decodes each part into a `dtype` tensor on `device`, in order. On a CUDA
/// device each call loads the kernels into candle's context and allocates
/// pinned staging buffers, once for all its parts: to decode tensor after
/// tensor, keep a `CudaLoader` (feature `candle-cuda`) instead of calling
/// [`tensor`] or [`shard`] for each.
pub fn parts(
    file: &GgufFile,
    parts: &[Part],
    dtype: DType,
    device: &Device,
) -> Result<Vec<Tensor>> {
    for (t, s) in parts {
        s.check(&t.name, t.ty, &t.ne)?;
        t.check_decodable()?;
    }
    match device {
        Device::Cpu => crate::with_out_elem!(out_type(dtype)?, O => on_cpu::<O>(file, parts)),
        #[cfg(feature = "candle-cuda")]
        Device::Cuda(dev) => {
            cuda::CudaLoader::new(dev, &Default::default())?.parts(file, parts, dtype)
        }
        other => Err(Error::Invalid(format!(
            "candle device {:?}: this build decodes onto the CPU{}",
            other.location(),
            if cfg!(feature = "candle-cuda") {
                " and CUDA devices"
            } else {
                " only (CUDA devices need the `candle-cuda` feature)"
            }
        ))),
    }
}

/// The output type of a candle dtype: f32, f16 or bf16, else an error.
fn out_type(dtype: DType) -> Result<OutType> {
    match dtype {
        DType::F32 => Ok(OutType::F32),
        DType::F16 => Ok(OutType::F16),
        DType::BF16 => Ok(OutType::BF16),
        other => Err(Error::Invalid(format!(
            "decoding into {other:?}: GGUF tensors decode into f32, f16 or bf16"
        ))),
    }
}

/// A candle error, as ours: said of `what`, candle's error kept as the source.
fn candle_err(what: &str, e: candle_core::Error) -> Error {
    Error::External {
        context: format!("{what}: candle"),
        source: Box::new(e),
    }
}

fn dims(shape: Vec<u64>) -> Result<Vec<usize>> {
    shape
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| Error::Length(format!("dimension {d}"))))
        .collect()
}

fn on_cpu<O: OutElem + candle_core::WithDType>(
    file: &GgufFile,
    parts: &[Part],
) -> Result<Vec<Tensor>> {
    parts
        .iter()
        .map(|(t, s)| {
            let n = s.n_elems();
            let mut out: Vec<O> = crate::alloc::try_vec(n).ok_or_else(|| {
                Error::Length(format!(
                    "tensor '{}': {n} elements do not fit in memory",
                    t.name
                ))
            })?;
            crate::shard::dequantize_shard(file, t, s, &mut out)?;
            Tensor::from_vec(out, dims(s.shape(&t.ne))?, &Device::Cpu)
                .map_err(|e| candle_err(&format!("tensor '{}'", t.name), e))
        })
        .collect()
}

#[cfg(feature = "candle-cuda")]
mod cuda;
#[cfg(feature = "candle-cuda")]
pub use cuda::CudaLoader;
