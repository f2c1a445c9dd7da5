//! The host-emulated grid: the CUDA kernels of `cuda/`, compiled by the host C++
//! compiler, run on the CPU over the grid a GPU launch would use.
//!
//! This is how the kernel source is tested where there is no GPU (CI, most
//! development machines): the same `.cu` code, the same launch geometry and
//! grid-stride loop, checked to the bit against the CPU reference.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::kernels::{launches, KernelInfo, MAX_GRID};
use crate::out::OutElem;
use crate::types::{check_lengths, GgmlType};

extern "C" {
    /// Runs the kernel named `symbol` (NUL-terminated) over a `grid` x
    /// `threads` launch; 0, or -1 where the image has no such kernel.
    fn gdq_emulate_launch(
        symbol: *const core::ffi::c_char,
        src: *const u8,
        dst: *mut core::ffi::c_void,
        n_blocks: u64,
        grid: u32,
        threads: u32,
    ) -> i32;
}

/// Blocks per emulated launch when a tensor is split across host threads.
const BLOCKS_PER_LAUNCH: usize = 4096;

#[cfg(feature = "fault-injection")]
#[path = "emulated/fault.rs"]
mod fault;
#[cfg(not(feature = "fault-injection"))]
mod fault {
    /// Faults are injected only in builds with the `fault-injection` feature.
    #[inline(always)]
    pub fn injected() -> Option<crate::Error> {
        None
    }
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
    if let Some(e) = fault::injected() {
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
        .try_for_each(|(y, x)| run_launches(ty, x, y, max_grid, aligned16))
}

/// Runs the launches the GPU would make for this piece of a tensor.
fn run_launches<O: OutElem>(
    ty: GgmlType,
    src: &[u8],
    out: &mut [O],
    max_grid: u32,
    aligned16: bool,
) -> Result<()> {
    let unsupported = Error::Unsupported { tensor: None, ty };
    for l in launches(ty, out.len() as u64, aligned16).ok_or(unsupported)? {
        let (grid, threads) = l.kernel.geometry(l.n_blocks, max_grid);
        let symbol = l.kernel.symbol(O::OUT);
        let c_symbol = std::ffi::CString::new(symbol.as_str()).expect("kernel names have no NUL");
        // SAFETY: the launches cover src and out exactly (checked lengths, and
        // `launches`' offsets and counts); each kernel writes only the elements
        // of its n_blocks blocks, of the output type its name says.
        let rc = unsafe {
            gdq_emulate_launch(
                c_symbol.as_ptr(),
                src.as_ptr().add(l.src_offset as usize),
                out.as_mut_ptr().add(l.dst_offset as usize).cast(),
                l.n_blocks,
                grid,
                threads,
            )
        };
        if rc != 0 {
            return Err(Error::Cuda(format!(
                "launching {symbol}: the emulated image has no such kernel"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::KERNELS;
    use crate::types::OutType;

    /// Every kernel the launcher can name is in the emulated image, in every
    /// output type (build.rs checks the same of the GPU image), and a name
    /// that is not fails as a launch.
    #[test]
    fn every_listed_kernel_is_in_the_image() {
        for k in KERNELS {
            for out in OutType::ALL {
                let symbol = std::ffi::CString::new(k.symbol(out)).unwrap();
                let mut dst = [0u32; 4];
                // SAFETY: zero blocks: the kernel reads and writes nothing.
                let rc = unsafe {
                    gdq_emulate_launch(
                        symbol.as_ptr(),
                        [0u8; 16].as_ptr(),
                        dst.as_mut_ptr().cast(),
                        0,
                        1,
                        32,
                    )
                };
                assert_eq!(rc, 0, "{symbol:?}");
            }
        }
        let missing = c"gdq_q4_0_f64";
        // SAFETY: as above.
        let rc = unsafe {
            gdq_emulate_launch(
                missing.as_ptr(),
                [0u8; 16].as_ptr(),
                [0u32; 4].as_mut_ptr().cast(),
                0,
                1,
                32,
            )
        };
        assert_eq!(rc, -1);
    }
}
