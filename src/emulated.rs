//! The host-emulated grid: the CUDA kernels of `cuda/`, compiled by the host C++
//! compiler, run on the CPU over the grid a GPU launch would use.
//!
//! This is how the kernel source is tested where there is no GPU (CI, most
//! development machines): the same `.cu` code, the same launch geometry and
//! grid-stride loop, checked to the bit against the CPU reference.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use rayon::prelude::*;

use crate::cpu::{check_lengths, OutElem};
use crate::error::{Error, Result};
use crate::kernels::{out_code, plan, KernelInfo, MAX_GRID};
use crate::types::GgmlType;

extern "C" {
    fn gdq_emulate_launch(
        type_id: u32,
        out: u32,
        src: *const u8,
        dst: *mut core::ffi::c_void,
        n_blocks: u64,
        grid: u32,
        threads: u32,
    ) -> i32;
}

/// Blocks per emulated launch when a tensor is split across host threads.
const BLOCKS_PER_LAUNCH: usize = 4096;

/// Fault injection, so that the handling of GPU failures (an error, no panic, no
/// partial output) can be tested where there is no GPU: with
/// `GDQ_INJECT_FAULT=KIND:N`, the N-th emulated decode call of the process fails
/// as the GPU would, KIND being `launch` (a failed launch), `oom` (device memory
/// exhausted) or `lost` (the device disappeared).
fn injected_fault() -> Option<Error> {
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
    let what = match kind.as_str() {
        "oom" => "CUDA_ERROR_OUT_OF_MEMORY: out of memory allocating the output",
        "lost" => "CUDA_ERROR_DEVICE_UNAVAILABLE: the device is no longer available",
        _ => "CUDA_ERROR_LAUNCH_FAILED: unspecified launch failure",
    };
    Some(Error::Cuda(format!(
        "{what} (injected by GDQ_INJECT_FAULT)"
    )))
}

/// Decodes `src` (whole blocks of `ty`) into `out` by running the kernels.
pub fn dequantize<O: OutElem>(ty: GgmlType, src: &[u8], out: &mut [O]) -> Result<()> {
    dequantize_with_grid(ty, src, out, MAX_GRID)
}

/// As [`dequantize`], with the grid capped at `max_grid` blocks, so that tests
/// can make every thread walk the grid-stride loop more than once.
pub fn dequantize_with_grid<O: OutElem>(
    ty: GgmlType,
    src: &[u8],
    out: &mut [O],
    max_grid: u32,
) -> Result<()> {
    check_lengths(ty, src.len(), out.len())?;
    let k = KernelInfo::of(ty).ok_or(Error::Unsupported { tensor: None, ty })?;
    if let Some(e) = injected_fault() {
        return Err(e);
    }
    // The kernels read blocks through typed pointers: give them the alignment a
    // device allocation has. A mapped file's tensor may sit at any offset.
    let aligned: Vec<u128>;
    let src = if (src.as_ptr() as usize).is_multiple_of(16) {
        src
    } else {
        let mut v = vec![0u128; src.len().div_ceil(16)];
        // SAFETY: v holds at least src.len() bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), src.len()) };
        bytes.copy_from_slice(src);
        aligned = v;
        // SAFETY: as above; `aligned` lives to the end of the function.
        unsafe { std::slice::from_raw_parts(aligned.as_ptr().cast::<u8>(), src.len()) }
    };
    // Independent launches over chunks of the tensor, on the host's threads.
    let qk = k.qk as usize;
    let per = BLOCKS_PER_LAUNCH;
    let aligned16 = (out.as_ptr() as usize).is_multiple_of(16);
    out.par_chunks_mut(per * qk)
        .zip(src.par_chunks(per * k.block_bytes() as usize))
        .try_for_each(|(y, x)| launch_plan(ty, x, y, max_grid, aligned16))
}

/// Runs the launches the GPU would make for this piece of a tensor.
fn launch_plan<O: OutElem>(
    ty: GgmlType,
    src: &[u8],
    out: &mut [O],
    max_grid: u32,
    aligned16: bool,
) -> Result<()> {
    let unsupported = Error::Unsupported { tensor: None, ty };
    let plan = plan(ty, out.len() as u64, aligned16).ok_or(unsupported)?;
    for l in plan {
        let (grid, threads) = l.kernel.geometry(l.n_blocks, max_grid);
        // SAFETY: the plan covers src and out exactly (checked lengths, and
        // `plan`'s offsets and counts); each kernel writes only its n_blocks blocks.
        let rc = unsafe {
            gdq_emulate_launch(
                l.kernel.table_id(),
                out_code(O::OUT),
                src.as_ptr().add(l.src_offset as usize),
                out.as_mut_ptr().add(l.dst_offset as usize).cast(),
                l.n_blocks,
                grid,
                threads,
            )
        };
        if rc != 0 {
            return Err(Error::Unsupported { tensor: None, ty });
        }
    }
    Ok(())
}
