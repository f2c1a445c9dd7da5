//! candle-core's CUDA dequantization, timed beside our kernels in the same
//! process on the same blocks (cargo feature `cuda-peers`; `bench --device
//! cuda --peers`).
//!
//! candle-core 0.11 with its `cuda` feature decodes GGUF blocks on the GPU with
//! kernels derived from llama.cpp's (candle-kernels' `quantized.cu`, shipped as
//! PTX that the driver compiles when candle first loads it):
//! `QTensor::dequantize` (f32) and `QTensor::dequantize_f16` (f16), for q4_0,
//! q4_1, q5_0, q5_1, q8_0 and q2_K to q6_K. Those are the types timed here: its
//! f32/f16/bf16 "dequantize" goes through the host, and it has no bf16 output.
//!
//! candle opens the device's primary context, as `Gpu::new` does (cudarc's
//! `CudaContext::new` retains it): both decode in one CUDA context of one
//! process, ours on the context's default stream and candle's on its own
//! (per-thread) stream. Each decode is timed as ours is in `bench`, with CUDA
//! events on the stream it runs on, here around the whole API call (candle
//! allocates its output in it, from the stream's memory pool), the device
//! idle before each run; the median of the runs after one untimed run (which
//! also loads candle's kernels).
//!
//! The build: candle's cudarc links the CUDA libraries (its `dynamic-linking`,
//! which wins over our `dynamic-loading`), so a binary with this feature only
//! starts where libcuda, libnvrtc, libcublas, libcublasLt, libcurand and
//! libcudart are found (scripts/gpu-prepare.sh links against stubs of them and
//! carries it as a second binary; scripts/gpu-run.sh finds the real ones).

use std::borrow::Cow;
use std::sync::OnceLock;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{Device, Tensor};
use cudarc::driver::sys::CUevent_flags;

use crate::error::{CudaError, CudaErrorKind, Error, Result};
use crate::gpu::Gpu;
use crate::out::{as_bytes, OutElem};
use crate::types::{GgmlType, OutType};

/// The peer's name in `bench` rows.
pub const NAME: &str = "candle-core-cuda";

/// candle's timing of one type and output.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Median seconds per decode (CUDA events on candle's stream).
    pub decode_s: f64,
    /// Whether candle's output equals ours (`Gpu::dequantize_host`) bit for bit.
    pub exact: bool,
}

/// candle's type for `ty`, where candle decodes it on the GPU.
pub fn candle_dtype(ty: GgmlType) -> Option<GgmlDType> {
    use GgmlType::*;
    Some(match ty {
        Q4_0 => GgmlDType::Q4_0,
        Q4_1 => GgmlDType::Q4_1,
        Q5_0 => GgmlDType::Q5_0,
        Q5_1 => GgmlDType::Q5_1,
        Q8_0 => GgmlDType::Q8_0,
        Q2_K => GgmlDType::Q2K,
        Q3_K => GgmlDType::Q3K,
        Q4_K => GgmlDType::Q4K,
        Q5_K => GgmlDType::Q5K,
        Q6_K => GgmlDType::Q6K,
        _ => return None,
    })
}

/// Whether candle decodes `ty` into `out` on the GPU.
pub fn supports(ty: GgmlType, out: OutType) -> bool {
    candle_dtype(ty).is_some() && matches!(out, OutType::F32 | OutType::F16)
}

fn candle_err(what: &str) -> impl Fn(candle_core::Error) -> Error + '_ {
    move |e| CudaError::new(CudaErrorKind::Other, format!("{NAME}: {what}: {e}")).into()
}

/// candle's device `ordinal`, opened once per process (its kernels are loaded,
/// and compiled by the driver, once).
fn device(ordinal: usize) -> Result<&'static Device> {
    static DEVICE: OnceLock<(usize, std::result::Result<Device, String>)> = OnceLock::new();
    let (opened, dev) = DEVICE.get_or_init(|| {
        let dev =
            Device::new_cuda(ordinal).map_err(|e| format!("opening CUDA device {ordinal}: {e}"));
        (ordinal, dev)
    });
    if *opened != ordinal {
        return Err(CudaError::new(
            CudaErrorKind::Other,
            format!("{NAME}: device {opened} is open, not {ordinal}"),
        )
        .into());
    }
    dev.as_ref()
        .map_err(|e| CudaError::new(CudaErrorKind::Other, format!("{NAME}: {e}")).into())
}

fn decode(q: &QTensor, dev: &Device, out: OutType) -> candle_core::Result<Tensor> {
    match out {
        OutType::F16 => q.dequantize_f16(dev),
        _ => q.dequantize(dev),
    }
}

/// Whether candle's decoded tensor equals `want`, bit for bit.
fn same_bits<O: OutElem>(t: &Tensor, want: &[O]) -> candle_core::Result<bool> {
    let t = t.flatten_all()?;
    Ok(match O::OUT {
        OutType::F16 => as_bytes(&t.to_vec1::<half::f16>()?) == as_bytes(want),
        _ => as_bytes(&t.to_vec1::<f32>()?) == as_bytes(want),
    })
}

/// Times candle's decode of `src` (whole blocks of `ty`, on the host) into `O`
/// on `g`'s device: `None` where candle has no GPU decoder for them.
pub fn time_candle<O: OutElem>(
    g: &Gpu,
    ty: GgmlType,
    src: &[u8],
    runs: usize,
) -> Result<Option<Timing>> {
    let Some(dtype) = candle_dtype(ty).filter(|_| supports(ty, O::OUT)) else {
        return Ok(None);
    };
    // candle reinterprets the bytes as its block structs (and asserts their
    // alignment, at most 8 bytes): refuse, rather than panic, where it fails.
    if !(src.as_ptr() as usize).is_multiple_of(8) {
        return Err(Error::Invalid(format!(
            "{NAME}: the {ty} blocks are not 8-byte aligned"
        )));
    }
    let n = src.len() / ty.block_bytes() * ty.block_elems();
    let dev = device(g.context().ordinal())?;
    let stream = dev
        .as_cuda_device()
        .map_err(candle_err("the device"))?
        .cuda_stream();
    let storage = QStorage::from_data(Cow::Borrowed(src), dev, dtype)
        .map_err(candle_err("copying blocks"))?;
    let q = QTensor::new(storage, (n,)).map_err(candle_err("the tensor"))?;

    // Untimed: loads candle's kernels; its output is checked against ours.
    let first = decode(&q, dev, O::OUT).map_err(candle_err("decoding"))?;
    let mut want = vec![O::default(); n];
    g.dequantize_host(ty, src, &mut want)?;
    let exact = same_bits(&first, &want).map_err(candle_err("reading the output"))?;
    drop((first, want));

    let mut times = Vec::with_capacity(runs.max(5));
    for _ in 0..runs.max(5) {
        dev.synchronize().map_err(candle_err("synchronizing"))?;
        let start = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| Error::cuda(format!("{NAME}: event"), e))?;
        let out = decode(&q, dev, O::OUT).map_err(candle_err("decoding"))?;
        let end = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| Error::cuda(format!("{NAME}: event"), e))?;
        times.push(
            start
                .elapsed_ms(&end)
                .map_err(|e| Error::cuda(format!("{NAME}: timing"), e))? as f64
                / 1e3,
        );
        // freed after the end event, outside the timed span
        drop(out);
    }
    dev.synchronize().map_err(candle_err("synchronizing"))?;
    times.sort_by(f64::total_cmp);
    Ok(Some(Timing {
        decode_s: times[times.len() / 2],
        exact,
    }))
}
