//! Fault injection (feature `fault-injection`, which the crate's own tests
//! turn on), so that the handling of GPU failures (an error, no panic, no
//! partial output) can be tested where there is no GPU.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::error::{CudaError, CudaErrorKind, Error};

/// With `GDQ_INJECT_FAULT=KIND:N`, the N-th emulated decode call (or launch on
/// the emulated device) of the process fails
/// as the GPU would, KIND being `launch` (a failed launch), `oom` (device memory
/// exhausted) or `lost` (the device disappeared).
pub fn injected() -> Option<Error> {
    static PLAN: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let (kind, at) = PLAN
        .get_or_init(|| {
            let v = std::env::var("GDQ_INJECT_FAULT").ok()?;
            let (kind, n) = v.split_once(':')?;
            Some((kind.to_string(), n.parse().ok()?))
        })
        .as_ref()?;
    if CALLS.fetch_add(1, Ordering::Relaxed) + 1 != *at {
        return None;
    }
    let (kind, what) = match kind.as_str() {
        "oom" => (
            CudaErrorKind::OutOfMemory,
            "CUDA_ERROR_OUT_OF_MEMORY: out of memory allocating the output",
        ),
        "lost" => (
            CudaErrorKind::DeviceUnavailable,
            "CUDA_ERROR_DEVICE_UNAVAILABLE: the device is no longer available",
        ),
        _ => (
            CudaErrorKind::LaunchFailed,
            "CUDA_ERROR_LAUNCH_FAILED: unspecified launch failure",
        ),
    };
    Some(Error::from(CudaError::new(
        kind,
        format!("{what} (injected by GDQ_INJECT_FAULT)"),
    )))
}
