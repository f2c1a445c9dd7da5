//! Where decoding runs: the CPU, the GPU, the host-emulated GPU kernels, or
//! the kernels' PTX through the interpreter.

use std::fmt;
use std::str::FromStr;

#[cfg(feature = "cuda")]
use crate::emulated::device::EmuDevice;
#[cfg(not(feature = "cuda"))]
use crate::error::Error;
use crate::error::Result;
use crate::gguf::{GgufFile, TensorInfo};
#[cfg(feature = "cuda")]
use crate::gpu::Gpu;
use crate::out::OutElem;
#[cfg(feature = "cuda")]
use crate::pipeline::{Device as _, LoadOptions, Loader};
use crate::shard::{self, Shard};

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda,
    /// The CUDA kernels compiled for the host and run over an emulated grid.
    Emulated,
    /// The kernels' PTX for `compute_<arch>` run by the interpreter
    /// ([`crate::ptx`]): `ptx` is compute_90's, `ptx120` compute_120's.
    Ptx(u16),
    /// The GPU when one is usable, else the CPU.
    Auto,
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            "emulated" => Ok(DeviceChoice::Emulated),
            "auto" => Ok(DeviceChoice::Auto),
            "ptx" => Ok(DeviceChoice::Ptx(90)),
            other => match other.strip_prefix("ptx").map(str::parse) {
                Some(Ok(arch)) => Ok(DeviceChoice::Ptx(arch)),
                _ => Err(format!(
                    "unknown device '{s}' (expected cpu, cuda, emulated, ptx, ptx<arch> or auto)"
                )),
            },
        }
    }
}

/// An opened device. Each device kind decodes through a [`Loader`]: the
/// compressed blocks go through pinned staging buffers on several streams,
/// overlapped, and are decoded in device memory.
pub enum Backend {
    Cpu,
    /// The emulated device, through the same loader pipeline as the GPU.
    #[cfg(feature = "cuda")]
    Emulated(Box<Loader<EmuDevice>>),
    #[cfg(feature = "cuda")]
    Cuda(Box<Loader<Gpu>>),
    /// The PTX interpreter, with the architecture of the PTX it runs.
    #[cfg(feature = "cuda")]
    Ptx(String),
}

#[cfg(feature = "cuda")]
fn gpu_loader(gpu: Gpu) -> Result<Loader<Gpu>> {
    gpu.loader(&LoadOptions::default())
}

#[cfg(feature = "cuda")]
fn emulated_loader() -> Result<Loader<EmuDevice>> {
    let dev = EmuDevice::new();
    let stream = dev.new_stream()?;
    Loader::new(
        dev,
        stream,
        &LoadOptions::default().with_chunk_bytes(4 << 20),
    )
}

/// What a build without the `cuda` feature says when asked for a GPU.
pub const NO_CUDA_FEATURE: &str =
    "this build has no GPU support (built without the `cuda` feature)";

impl Backend {
    /// Opens `device`. For `Auto`, also returns why the CPU was chosen when it was.
    pub fn open(device: DeviceChoice) -> Result<(Backend, Option<String>)> {
        match device {
            DeviceChoice::Cpu => Ok((Backend::Cpu, None)),
            #[cfg(feature = "cuda")]
            DeviceChoice::Emulated => Ok((Backend::Emulated(Box::new(emulated_loader()?)), None)),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda => Ok((Backend::Cuda(Box::new(gpu_loader(Gpu::new(0)?)?)), None)),
            #[cfg(feature = "cuda")]
            DeviceChoice::Auto => match Gpu::new(0).and_then(gpu_loader) {
                Ok(g) => Ok((Backend::Cuda(Box::new(g)), None)),
                Err(e) => Ok((
                    Backend::Cpu,
                    Some(format!("using the CPU: no usable GPU ({e})")),
                )),
            },
            #[cfg(feature = "cuda")]
            DeviceChoice::Ptx(arch) => {
                let arch = arch.to_string();
                crate::ptx::builtin(&arch)?;
                Ok((Backend::Ptx(arch), None))
            }
            #[cfg(not(feature = "cuda"))]
            DeviceChoice::Emulated | DeviceChoice::Cuda | DeviceChoice::Ptx(_) => {
                Err(Error::Invalid(NO_CUDA_FEATURE.into()))
            }
            #[cfg(not(feature = "cuda"))]
            DeviceChoice::Auto => Ok((
                Backend::Cpu,
                Some(format!("using the CPU: {NO_CUDA_FEATURE}")),
            )),
        }
    }

    /// Decodes `shard` of tensor `t` of `file` into host memory `out`
    /// (`rows x cols` values, row-major) on this backend, reading only the
    /// shard's blocks: on a device, through its [`Loader`].
    pub fn decode_part<O: OutElem>(
        &self,
        file: &GgufFile,
        t: &TensorInfo,
        shard: &Shard,
        out: &mut [O],
    ) -> Result<()> {
        match self {
            Backend::Cpu => shard::dequantize_shard(file, t, shard, out),
            #[cfg(feature = "cuda")]
            Backend::Emulated(l) => l.decode_part(file, t, shard, out),
            #[cfg(feature = "cuda")]
            Backend::Cuda(l) => l.decode_part(file, t, shard, out),
            #[cfg(feature = "cuda")]
            Backend::Ptx(arch) => shard::dequantize_shard_with(file, t, shard, out, |ty, b, o| {
                crate::ptx::dequantize(arch, ty, b, o)
            }),
        }
        .map_err(|e| e.for_tensor(&t.name))
    }

    /// Decodes all of tensor `t` of `file` into host memory `out` on this
    /// backend ([`Backend::decode_part`] of the whole tensor).
    pub fn decode_tensor<O: OutElem>(
        &self,
        file: &GgufFile,
        t: &TensorInfo,
        out: &mut [O],
    ) -> Result<()> {
        self.decode_part(file, t, &Shard::whole(t), out)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            #[cfg(feature = "cuda")]
            Backend::Emulated(_) => "emulated",
            #[cfg(feature = "cuda")]
            Backend::Cuda(_) => "cuda",
            #[cfg(feature = "cuda")]
            Backend::Ptx(_) => "ptx",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Cpu => write!(f, "CPU ({} threads)", crate::pool::current_num_threads()),
            #[cfg(feature = "cuda")]
            Backend::Emulated(_) => f.write_str("host-emulated CUDA kernels"),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => write!(f, "CUDA: {}", g.device().name()),
            #[cfg(feature = "cuda")]
            Backend::Ptx(arch) => write!(f, "the kernels' compute_{arch} PTX, interpreted"),
        }
    }
}
