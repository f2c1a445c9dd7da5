//! The GPU: the kernels of `cuda/`, embedded as a fatbin at build time, launched
//! through cudarc on raw quantized blocks in device memory.
//!
//! Everything here returns `Err` rather than panicking when there is no driver,
//! no device, no embedded kernels, or a failed call. cudarc loads the driver
//! library dynamically, so nothing CUDA is needed to build or to run the CPU
//! paths, and we check that the library is present before cudarc would panic.

mod device;
mod foreign;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr,
    DevicePtrMut, DeviceSlice, LaunchConfig, PushKernelArg,
};

pub use foreign::{ForeignBuffer, KeepCurrentContext};
/// A CUDA stream of another framework's (a raw `CUstream`).
pub type RawStream = cudarc::driver::sys::CUstream;

use crate::error::{CudaError, CudaErrorKind, Error, Result};
use crate::kernels::{check_alignment, launches, KernelInfo, MAX_GRID};
use crate::out::check_lengths;
use crate::out::OutElem;
use crate::pipeline::{LoadOptions, Loader};
use crate::types::GgmlType;

#[cfg(gdq_kernels)]
static FATBIN: &[u8] = include_bytes!(env!("GDQ_FATBIN"));
#[cfg(not(gdq_kernels))]
static FATBIN: &[u8] = &[];

/// What to do when this build has no kernels.
pub const NO_KERNELS_HELP: &str =
    "this build embeds no CUDA kernels (nvcc was not found when it was compiled); \
     run scripts/install-cuda-toolchain.sh, or set NVCC or CUDA_HOME, then rebuild";

/// Whether this build embeds the CUDA kernels.
pub fn kernels_embedded() -> bool {
    !FATBIN.is_empty()
}

/// The GPU architectures (`sm_XX`) the embedded kernels were compiled for.
pub fn embedded_archs() -> Vec<String> {
    env!("GDQ_CUDA_ARCHS")
        .split(',')
        .filter(|a| !a.is_empty())
        .map(|a| format!("sm_{a}"))
        .collect()
}

/// `n` elements of uninitialized device memory, allocated in `stream`'s order.
/// The driver's `cuMemAlloc` refuses zero bytes (its documentation says so;
/// `cuMemAllocAsync`'s does not say), and a GGUF tensor may have
/// no elements: such a one gets a one-element allocation presented as empty,
/// freed when dropped like any other.
///
/// # Safety
/// As `CudaStream::alloc`: the memory must be written before it is read.
unsafe fn alloc_elems<O: cudarc::driver::DeviceRepr>(
    stream: &Arc<CudaStream>,
    n: usize,
) -> std::result::Result<CudaSlice<O>, cudarc::driver::DriverError> {
    // SAFETY: the caller writes the memory before reading it.
    let slice = unsafe { stream.alloc::<O>(n.max(1)) }?;
    if n > 0 {
        return Ok(slice);
    }
    let ptr = slice.leak();
    // SAFETY: `ptr` is a live allocation of this stream's context holding one
    // `O`, so at least the zero elements the slice claims; the slice owns it
    // and frees it on drop, as the one `leak` gave it up from.
    Ok(unsafe { stream.upgrade_device_ptr(ptr, 0) })
}

/// Whether the CUDA driver library can be loaded (cudarc panics where it cannot).
#[cfg(not(feature = "cuda-peers"))]
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the library.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// With `cuda-peers`, candle-core's cudarc links libcuda (its `dynamic-linking`
/// replaces our `dynamic-loading`, and `is_culib_present` with it): a process
/// that started has the library.
#[cfg(feature = "cuda-peers")]
pub fn driver_present() -> bool {
    true
}

/// One CUDA device as the driver reports it.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// The device's ordinal (`cuDeviceGet`).
    pub ordinal: usize,
    /// Its name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// Its compute capability, (major, minor).
    pub compute_capability: (i32, i32),
    /// Its memory, bytes.
    pub total_mem: usize,
}

/// How many CUDA devices this machine has; an error where there is no driver.
pub fn device_count() -> Result<usize> {
    if !driver_present() {
        return Err(CudaError::new(
            CudaErrorKind::NoDriver,
            "no CUDA driver library (libcuda) on this machine",
        )
        .into());
    }
    let n = CudaContext::device_count().map_err(|e| Error::cuda("counting devices", e))?;
    Ok(n.max(0) as usize)
}

/// The CUDA devices of this machine; an error where there is no driver.
pub fn devices() -> Result<Vec<DeviceInfo>> {
    (0..device_count()?)
        .map(|i| {
            let ctx = CudaContext::new(i).map_err(|e| Error::cuda("opening device", e))?;
            Ok(DeviceInfo {
                ordinal: i,
                name: ctx.name().map_err(|e| Error::cuda("device name", e))?,
                compute_capability: ctx
                    .compute_capability()
                    .map_err(|e| Error::cuda("compute capability", e))?,
                total_mem: ctx
                    .total_mem()
                    .map_err(|e| Error::cuda("device memory", e))?,
            })
        })
        .collect()
}

/// A CUDA device with the kernels loaded.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    module: Arc<CudaModule>,
    functions: Mutex<HashMap<String, CudaFunction>>,
}

impl Gpu {
    /// Opens device `ordinal` and loads the embedded kernels.
    pub fn new(ordinal: usize) -> Result<Self> {
        if !kernels_embedded() {
            return Err(CudaError::new(CudaErrorKind::NoKernels, NO_KERNELS_HELP).into());
        }
        let count = device_count()?;
        if ordinal >= count {
            return Err(CudaError::new(
                CudaErrorKind::NoDevice,
                format!("no CUDA device {ordinal}: this machine has {count}"),
            )
            .into());
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| Error::cuda("opening the device", e))?;
        Self::from_context(ctx)
    }

    /// Loads the kernels into a context the caller already has (an engine's,
    /// e.g. candle's `CudaDevice`'s), so that decoded tensors live in it. The
    /// caller's own streams can then be given to [`Gpu::dequantize_on`] and to
    /// the loader pipeline.
    pub fn from_context(ctx: Arc<CudaContext>) -> Result<Self> {
        if !kernels_embedded() {
            return Err(CudaError::new(CudaErrorKind::NoKernels, NO_KERNELS_HELP).into());
        }
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(FATBIN.to_vec()))
            .map_err(|e| {
                Error::cuda(
                    format!(
                        "loading kernels (built for {})",
                        embedded_archs().join(", ")
                    ),
                    e,
                )
            })?;
        let stream = ctx.default_stream();
        Ok(Gpu {
            ctx,
            stream,
            module,
            functions: Mutex::new(HashMap::new()),
        })
    }

    /// A loader onto this GPU ([`Loader`]: its staging made once for every
    /// load), the outputs allocated in the order of this GPU's stream.
    pub fn loader(self, opts: &LoadOptions) -> Result<Loader<Gpu>> {
        let stream = self.stream.clone();
        Loader::new(self, stream, opts)
    }

    /// The CUDA context the kernels are loaded in.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// This GPU's own stream (the context's default one).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The device's name, e.g. "NVIDIA H100 80GB HBM3".
    pub fn name(&self) -> String {
        self.ctx
            .name()
            .unwrap_or_else(|_| "unknown CUDA device".into())
    }

    fn function(&self, name: &str) -> Result<CudaFunction> {
        let mut fns = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = fns.get(name) {
            return Ok(f.clone());
        }
        let f = self
            .module
            .load_function(name)
            .map_err(|e| Error::cuda(format!("kernel {name}"), e))?;
        fns.insert(name.to_string(), f.clone());
        Ok(f)
    }

    /// Decodes `src` (whole blocks of `ty`, in device memory) into `dst` on `stream`.
    /// Lengths, type, alignment and context (`stream`, `src` and `dst` of
    /// this GPU's context: the kernels are loaded there) are checked before
    /// the launch; the launch is checked, but not waited for.
    pub fn dequantize_on<O: OutElem>(
        &self,
        stream: &Arc<CudaStream>,
        ty: GgmlType,
        src: &CudaView<'_, u8>,
        dst: &mut CudaViewMut<'_, O>,
    ) -> Result<()> {
        check_lengths(ty, src.len(), dst.len())?;
        let ours = |s: &Arc<CudaStream>| **s.context() == *self.ctx;
        if !ours(stream) || !ours(src.stream()) || !ours(dst.stream()) {
            return Err(Error::Invalid(
                "a stream or buffer of another CUDA context than this Gpu's: \
                 the kernels are loaded in this Gpu's context only"
                    .into(),
            ));
        }
        let unsupported = Error::Unsupported { tensor: None, ty };
        if src.is_empty() {
            return KernelInfo::of(ty).map(|_| ()).ok_or(unsupported);
        }
        let (src_ptr, dst_ptr) = (src.device_ptr(stream).0, dst.device_ptr_mut(stream).0);
        check_alignment(ty, src_ptr, dst_ptr, std::mem::size_of::<O>())?;
        let aligned16 = src_ptr % 16 == 0 && dst_ptr % 16 == 0;
        for l in launches(ty, dst.len() as u64, aligned16).ok_or(unsupported)? {
            let name = l.kernel.symbol(O::OUT);
            let f = self.function(&name)?;
            let src_part = src.slice(l.src_offset as usize..);
            let mut dst_part = dst.slice_mut(l.dst_offset as usize..);
            let (grid, threads) = l.kernel.geometry(l.n_blocks, MAX_GRID);
            let cfg = LaunchConfig {
                grid_dim: (grid, 1, 1),
                block_dim: (threads, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut launch = stream.launch_builder(&f);
            launch.arg(&src_part).arg(&mut dst_part).arg(&l.n_blocks);
            // SAFETY: the kernel reads n_blocks blocks of src_part and writes
            // their elements to dst_part; `launches` keeps both inside the lengths
            // checked above.
            unsafe { launch.launch(cfg) }
                .map_err(|e| Error::cuda(format!("launching {name}"), e))?;
        }
        Ok(())
    }

    /// [`Gpu::dequantize_on`] on this device's stream.
    pub fn dequantize<O: OutElem>(
        &self,
        ty: GgmlType,
        src: &CudaView<'_, u8>,
        dst: &mut CudaViewMut<'_, O>,
    ) -> Result<()> {
        self.dequantize_on(&self.stream, ty, src, dst)
    }

    /// Copies host blocks to the device and decodes them there.
    pub fn upload_and_dequantize<O: OutElem>(
        &self,
        ty: GgmlType,
        host: &[u8],
    ) -> Result<CudaSlice<O>> {
        let bb = ty.block_bytes();
        if !host.len().is_multiple_of(bb) {
            return Err(Error::Length(format!(
                "{} bytes is not a whole number of {ty} blocks",
                host.len()
            )));
        }
        let n = host.len() / bb * ty.block_elems();
        // SAFETY: every byte is written by the copy before the kernel reads it.
        let mut src = unsafe { alloc_elems::<u8>(&self.stream, host.len()) }
            .map_err(|e| Error::cuda("allocating device memory for the blocks", e))?;
        if !host.is_empty() {
            self.stream
                .memcpy_htod(host, &mut src)
                .map_err(|e| Error::cuda("copying blocks to the device", e))?;
        }
        // SAFETY: every element is written by the kernel before it is read.
        let mut dst = unsafe { alloc_elems::<O>(&self.stream, n) }
            .map_err(|e| Error::cuda("allocating the output", e))?;
        self.dequantize(ty, &src.as_view(), &mut dst.as_view_mut())?;
        Ok(dst)
    }

    /// Decodes host blocks on the device into a host slice (upload, decode, download).
    pub fn dequantize_host<O: OutElem>(
        &self,
        ty: GgmlType,
        host: &[u8],
        out: &mut [O],
    ) -> Result<()> {
        check_lengths(ty, host.len(), out.len())?;
        let dst: CudaSlice<O> = self.upload_and_dequantize(ty, host)?;
        if !out.is_empty() {
            self.stream
                .memcpy_dtoh(&dst, out)
                .map_err(|e| Error::cuda("copying the output to the host", e))?;
        }
        self.stream
            .synchronize()
            .map_err(|e| Error::cuda("decoding", e))
    }

    /// Waits for this device's stream and reports any asynchronous error.
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| Error::cuda("synchronizing", e))
    }
}
