//! The PTX that nvcc emits for the kernels, executed by an interpreter of our
//! own: the code that ships, run where there is no GPU, with every memory
//! access checked.
//!
//! build.rs has nvcc emit the kernels' PTX from the same source and flags as
//! the fatbin, for two targets: `compute_90`, from which the SASS of the
//! H100 and H200 is made, and the newest architecture's, which the fatbin
//! embeds for GPUs newer than its SASS (the two come from different NVVM
//! versions and differ). [`Module::parse`] decodes a module once; a launch
//! then runs every thread of its grid in turn over [`Memory`], which stops
//! the launch, naming the kernel, the thread, the instruction and the
//! address, at any access outside an allocation, misaligned for its width,
//! reading bytes never written, writing a read-only table, or writing or
//! reading bytes another thread of the launch wrote, and at any read of a
//! register the thread never wrote (undefined on a GPU; here it would be
//! the last thread's value).
//!
//! [`dequantize`] decodes a tensor with these kernels exactly as the GPU
//! launcher would (the same launches, geometry and tail kernels), and
//! checks that every output byte was written. `--device ptx` on the command
//! line uses it. The interpreter is a test tool: it runs the kernels at
//! about a hundred million PTX instructions a second a core.

use crate::error::{CudaError, CudaErrorKind, Error, Result};
use crate::kernels::{for_each_piece, launches, KernelInfo, MAX_GRID};
use crate::out::check_lengths;
use crate::out::OutElem;
use crate::types::GgmlType;

mod exec;
mod memory;
pub mod model;
mod parse;

pub use exec::LaunchConfig;
pub use memory::Memory;
pub use parse::Module;

// `SOURCES: &[(&str, &str)]`: (architecture, PTX text) for each target
// build.rs had nvcc emit, and `PTXAS_LOG`, ptxas's report on the fatbin;
// both empty in a build without nvcc.
include!(concat!(env!("OUT_DIR"), "/ptx_sources.rs"));

/// Kernel blocks per launch when a tensor is decoded: each chunk is an
/// independent launch over its own device memory, run on a host thread.
const BLOCKS_PER_LAUNCH: usize = 4096;

/// The architectures whose PTX this build holds (`"90"`, `"120"`): empty
/// where it was built without nvcc.
pub fn targets() -> Vec<&'static str> {
    SOURCES.iter().map(|(arch, _)| *arch).collect()
}

/// The PTX text of the kernels for `arch` (one of [`targets`]), as nvcc wrote it.
pub fn source(arch: &str) -> Option<&'static str> {
    SOURCES.iter().find(|(a, _)| *a == arch).map(|(_, t)| *t)
}

/// The PTX of the kernels for `arch` (one of [`targets`]), parsed once.
pub fn builtin(arch: &str) -> Result<&'static Module> {
    use std::sync::OnceLock;
    static PARSED: OnceLock<Vec<std::result::Result<Module, String>>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        SOURCES
            .iter()
            .map(|(_, text)| Module::parse(text))
            .collect()
    });
    let i = SOURCES
        .iter()
        .position(|(a, _)| *a == arch)
        .ok_or_else(|| {
            Error::Invalid(if SOURCES.is_empty() {
                "this build has no PTX: nvcc was not found when it was built (see build.rs)"
                    .to_string()
            } else {
                format!(
                    "no PTX for compute_{arch} in this build (it has {})",
                    targets().join(", ")
                )
            })
        })?;
    parsed[i].as_ref().map_err(|e| {
        CudaError::new(
            CudaErrorKind::KernelsNotLoadable,
            format!("loading the built PTX: {e}"),
        )
        .into()
    })
}

impl Module {
    /// The byte size of each parameter of `kernel`, as its `.entry` declares
    /// them; `None` where the module has no such kernel.
    pub fn kernel_params(&self, kernel: &str) -> Option<Vec<u32>> {
        self.kernel(kernel).map(|k| k.params.clone())
    }

    /// Checks a launch of `kernel` (its grid and block against the device's
    /// and the kernel's limits, its parameters against the kernel's
    /// signature) as the driver does before it queues one, without running it.
    pub fn check_launch(&self, kernel: &str, config: &LaunchConfig) -> Result<()> {
        let k = self.kernel(kernel).ok_or_else(|| {
            CudaError::new(
                CudaErrorKind::Other,
                format!("CUDA_ERROR_NOT_FOUND: no kernel {kernel} in the PTX"),
            )
        })?;
        exec::check_config(k, config).map_err(other)
    }

    /// Runs one launch of `kernel` over `mem`.
    pub fn launch(&self, kernel: &str, mem: &mut Memory, config: &LaunchConfig) -> Result<()> {
        let k = self.kernel(kernel).ok_or_else(|| {
            CudaError::new(
                CudaErrorKind::Other,
                format!("CUDA_ERROR_NOT_FOUND: no kernel {kernel} in the PTX"),
            )
        })?;
        exec::check_config(k, config).map_err(other)?;
        exec::run(k, mem, config, &mut exec::NoProbe).map_err(|s| stopped(k, s))
    }
}

/// A failure of the interpreter's driver checks or memory, said by `message`
/// (which names the `CUDA_ERROR_` code a driver would return, where one would).
pub(crate) fn other(message: String) -> Error {
    CudaError::new(CudaErrorKind::Other, message).into()
}

/// The interpreter's device memory exhausted, said by `message`.
pub(crate) fn oom(message: String) -> Error {
    CudaError::new(
        CudaErrorKind::OutOfMemory,
        format!("CUDA_ERROR_OUT_OF_MEMORY: {message}"),
    )
    .into()
}

/// A launch's stop as an error naming the kernel, thread and instruction.
fn stopped(k: &parse::Kernel, s: exec::Stop) -> Error {
    let (line, text) = &k.text[s.pc];
    Error::from(CudaError::new(
        CudaErrorKind::LaunchFailed,
        format!(
            "{}: block {:?} thread {:?}: {}; at PTX line {line}: `{text}`",
            k.name, s.block, s.thread, s.what
        ),
    ))
}

/// Decodes `src` (whole blocks of `ty`) into `out` by running the kernels'
/// PTX for `arch`, with the GPU launcher's launches and geometry.
pub fn dequantize<O: OutElem>(arch: &str, ty: GgmlType, src: &[u8], out: &mut [O]) -> Result<()> {
    dequantize_with_grid(arch, ty, src, out, MAX_GRID)
}

/// As [`dequantize`], with grids capped at `max_grid` blocks (so that tests
/// make every thread walk the grid-stride loop).
pub fn dequantize_with_grid<O: OutElem>(
    arch: &str,
    ty: GgmlType,
    src: &[u8],
    out: &mut [O],
    max_grid: u32,
) -> Result<()> {
    check_lengths(ty, src.len(), out.len())?;
    KernelInfo::of(ty).ok_or(Error::Unsupported { tensor: None, ty })?;
    let module = builtin(arch)?;
    for_each_piece(ty, src, out, BLOCKS_PER_LAUNCH, |x, y| {
        decode_chunk(module, ty, x, y, max_grid)
    })
}

/// One chunk: its blocks copied to device memory, the launches the GPU
/// launcher would make, and every output byte copied back (an error if a
/// kernel left one unwritten).
fn decode_chunk<O: OutElem>(
    module: &Module,
    ty: GgmlType,
    src: &[u8],
    out: &mut [O],
    max_grid: u32,
) -> Result<()> {
    let size = std::mem::size_of::<O>();
    let mut mem = Memory::new(module);
    let input = mem.alloc("input", src.len()).map_err(oom)?;
    let output = mem
        .alloc("output", std::mem::size_of_val(out))
        .map_err(oom)?;
    mem.write_host(input, src).map_err(other)?;
    let unsupported = Error::Unsupported { tensor: None, ty };
    for l in launches(ty, out.len() as u64, true).ok_or(unsupported)? {
        let (grid, threads) = l.kernel.geometry(l.n_blocks, max_grid);
        let params = [
            input + l.src_offset,
            output + l.dst_offset * size as u64,
            l.n_blocks,
        ];
        let config = LaunchConfig {
            grid: [grid, 1, 1],
            block: [threads, 1, 1],
            params: &params,
        };
        module.launch(&l.kernel.symbol(O::OUT), &mut mem, &config)?;
    }
    let bytes = mem
        .read_host(output, std::mem::size_of_val(out))
        .map_err(other)?;
    crate::out::as_bytes_mut(out).copy_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::synth::{random_blocks, Rng};
    use crate::types::GgmlType;

    /// The PTX this build embeds (none without nvcc) decodes as the CPU does:
    /// so that a build with nvcc, the packed crate's included
    /// (scripts/package-check.sh), runs its kernels in its own unit tests.
    /// (tests/ptx.rs checks every type and output.)
    #[test]
    fn embedded_ptx_decodes_as_the_cpu() {
        if super::targets().is_empty() {
            assert!(
                std::env::var_os("GDQ_REQUIRE_PTX").is_none_or(|v| v != "1"),
                "GDQ_REQUIRE_PTX=1 and this build has no PTX (nvcc was not found)"
            );
            return;
        }
        let src = random_blocks(GgmlType::Q4_K, 2, &mut Rng(19));
        let mut want = vec![0f32; 512];
        crate::cpu::dequantize(GgmlType::Q4_K, &src, &mut want).unwrap();
        for arch in super::targets() {
            let mut got = vec![0f32; 512];
            super::dequantize(arch, GgmlType::Q4_K, &src, &mut got).unwrap();
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(g, w)| g.to_bits() == w.to_bits()),
                "compute_{arch}: q4_K differs from the CPU"
            );
        }
    }
}
