//! The host-emulated grid: the CUDA kernels of `cuda/`, compiled by the host C++
//! compiler, run on the CPU over the grid a GPU launch would use.
//!
//! This is how the kernel source is tested where there is no GPU (CI, most
//! development machines): the same `.cu` code, the same launch geometry and
//! grid-stride loop, checked to the bit against the CPU reference.

use crate::error::{CudaError, CudaErrorKind, Error, Result};
use crate::kernels::{for_each_piece, launches, KernelInfo, MAX_GRID};
use crate::out::check_lengths;
use crate::out::OutElem;
use crate::types::GgmlType;

extern "C" {
    /// Runs the kernel named `symbol` (NUL-terminated) over a `grid` x
    /// `threads` launch; 0, -1 where the image has no such kernel, -2 where a
    /// thread accessed misaligned memory (which faults on a GPU).
    fn gdq_emulate_launch(
        symbol: *const core::ffi::c_char,
        src: *const u8,
        dst: *mut core::ffi::c_void,
        n_blocks: u64,
        grid: u32,
        threads: u32,
    ) -> i32;
}

/// Emulated device memory: bytes 16-byte aligned, as a device allocation's
/// are (256-byte, there; the kernels need 16). Zeroed when made.
#[derive(Default)]
struct DeviceBytes {
    words: Vec<u128>,
    len: usize,
}

impl DeviceBytes {
    /// Fails as a GPU's allocation does where memory cannot hold `len` bytes
    /// (an error, never an abort).
    fn zeroed(len: usize) -> Result<Self> {
        let words = crate::alloc::try_vec(len.div_ceil(16) as u64).ok_or_else(|| {
            CudaError::new(
                CudaErrorKind::OutOfMemory,
                format!("CUDA_ERROR_OUT_OF_MEMORY: {len} bytes of device memory (emulated)"),
            )
        })?;
        Ok(DeviceBytes { words, len })
    }
    fn from_slice(src: &[u8]) -> Result<Self> {
        let mut m = Self::zeroed(src.len())?;
        m.bytes_mut().copy_from_slice(src);
        Ok(m)
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialized bytes (u128 has no
        // padding); u8 has no alignment requirement.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast(), self.len) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; any bytes are valid u128s.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast(), self.len) }
    }
}

/// Blocks per emulated launch when a tensor is split across host threads.
const BLOCKS_PER_LAUNCH: usize = 4096;

#[path = "emulated/device.rs"]
pub mod device;
#[cfg(feature = "fault-injection")]
#[path = "emulated/fault.rs"]
mod fault;
#[cfg(not(feature = "fault-injection"))]
mod fault {
    /// Faults are injected only in builds with the `fault-injection` feature.
    #[inline(always)]
    pub fn injected() -> Option<crate::error::Error> {
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
    KernelInfo::of(ty).ok_or(Error::Unsupported { tensor: None, ty })?;
    if let Some(e) = fault::injected() {
        return Err(e);
    }
    // The kernels read blocks through typed pointers: as a GPU decoding for the
    // host does, copy the blocks into (aligned) device memory first. A mapped
    // file's tensor may sit at any offset.
    let uploaded;
    let src = if (src.as_ptr() as usize).is_multiple_of(16) {
        src
    } else {
        uploaded = DeviceBytes::from_slice(src)?;
        uploaded.bytes()
    };
    let aligned16 = (out.as_ptr() as usize).is_multiple_of(16);
    if !aligned16 && ty.block_elems() > 1 {
        // The quantized kernels store 16 bytes at a time: as a GPU decoding for
        // the host does, decode into (aligned) device memory, then copy back.
        let len = out.len() + 16 / std::mem::size_of::<O>();
        let mut device = crate::alloc::try_vec::<O>(len as u64).ok_or_else(|| {
            CudaError::new(
                CudaErrorKind::OutOfMemory,
                format!("CUDA_ERROR_OUT_OF_MEMORY: {len} output elements (emulated)"),
            )
        })?;
        let skip = device.as_ptr().align_offset(16);
        let aligned_out = &mut device[skip..skip + out.len()];
        launch_chunks(ty, src, aligned_out, max_grid, true)?;
        out.copy_from_slice(aligned_out);
        return Ok(());
    }
    launch_chunks(ty, src, out, max_grid, aligned16)
}

/// Independent launches over pieces of the tensor, on the host's threads.
fn launch_chunks<O: OutElem>(
    ty: GgmlType,
    src: &[u8],
    out: &mut [O],
    max_grid: u32,
    aligned16: bool,
) -> Result<()> {
    for_each_piece(ty, src, out, BLOCKS_PER_LAUNCH, |x, y| {
        run_launches(ty, x, y, max_grid, aligned16)
    })
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
        match rc {
            0 => {}
            -2 => {
                return Err(CudaError::new(
                    CudaErrorKind::LaunchFailed,
                    format!(
                        "{symbol}: CUDA_ERROR_MISALIGNED_ADDRESS: a thread accessed misaligned \
                         memory (emulated: a GPU would fail the launch)"
                    ),
                )
                .into())
            }
            _ => {
                return Err(CudaError::new(
                    CudaErrorKind::Other,
                    format!("launching {symbol}: the emulated image has no such kernel"),
                )
                .into())
            }
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

    /// A kernel given memory a GPU would fault on fails its launch here too:
    /// a 16-byte store to an output 4 bytes off, a block read at an odd
    /// address, the plain types' wide loads off 16 bytes.
    #[test]
    fn a_misaligned_access_fails_the_launch() {
        let src = crate::synth::random_blocks(GgmlType::Q4_0, 64, &mut crate::synth::Rng(1));
        let mut out = vec![0f32; 64 * 32 + 4];
        let err = run_launches(
            GgmlType::Q4_0,
            &src,
            &mut out[1..64 * 32 + 1],
            MAX_GRID,
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("MISALIGNED"), "{err}");
        assert!(run_launches(
            GgmlType::Q4_0,
            &src,
            &mut out[4..64 * 32 + 4],
            MAX_GRID,
            true
        )
        .is_ok());

        let mut odd = vec![0u8; src.len() + 1];
        odd[1..].copy_from_slice(&src);
        let err = run_launches(
            GgmlType::Q4_0,
            &odd[1..],
            &mut out[..64 * 32],
            MAX_GRID,
            true,
        )
        .unwrap_err();
        assert!(err.to_string().contains("MISALIGNED"), "{err}");

        // f32's wide kernel (8 elements a thread) on input 4 bytes off 16
        let floats = vec![1.5f32; 17];
        let bytes = crate::out::as_bytes(&floats);
        let err =
            run_launches(GgmlType::F32, &bytes[4..], &mut out[..16], MAX_GRID, true).unwrap_err();
        assert!(err.to_string().contains("MISALIGNED"), "{err}");
        // the launcher sends such input to the one-element kernel instead
        run_launches(GgmlType::F32, &bytes[4..], &mut out[..16], MAX_GRID, false).unwrap();
        assert!(out[..16].iter().all(|&v| v == 1.5));
    }

    /// The host entry point decodes into any host memory, as the GPU's does
    /// (through aligned device memory): outputs at every 2-byte offset.
    #[test]
    fn host_outputs_at_any_alignment() {
        let src = crate::synth::random_blocks(GgmlType::Q4_K, 3, &mut crate::synth::Rng(2));
        let want: Vec<half::f16> = crate::cpu::dequantize_to_vec(GgmlType::Q4_K, &src).unwrap();
        let mut buf = vec![half::f16::ZERO; want.len() + 8];
        for off in 0..8 {
            let out = &mut buf[off..off + want.len()];
            dequantize(GgmlType::Q4_K, &src, out).unwrap();
            assert!(
                out.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "offset {off}"
            );
        }
    }
}
