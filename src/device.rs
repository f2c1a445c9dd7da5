//! Where decoding runs: the CPU, the GPU, or the host-emulated GPU kernels.

use std::fmt;
use std::str::FromStr;

use crate::cpu;
#[cfg(not(feature = "cuda"))]
use crate::error::Error;
use crate::error::Result;
use crate::out::OutElem;
use crate::types::GgmlType;
#[cfg(feature = "cuda")]
use crate::{emulated, gpu::Gpu};

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
    /// The CUDA kernels compiled for the host and run over an emulated grid.
    Emulated,
    /// The GPU when one is usable, else the CPU.
    Auto,
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda),
            "emulated" => Ok(Device::Emulated),
            "auto" => Ok(Device::Auto),
            _ => Err(format!(
                "unknown device '{s}' (expected cpu, cuda, emulated or auto)"
            )),
        }
    }
}

/// An opened device.
pub enum Backend {
    Cpu,
    #[cfg(feature = "cuda")]
    Emulated,
    #[cfg(feature = "cuda")]
    Cuda(Box<Gpu>),
}

/// What a build without the `cuda` feature says when asked for a GPU.
pub const NO_CUDA_FEATURE: &str =
    "this build has no GPU support (built without the `cuda` feature)";

impl Backend {
    /// Opens `device`. For `Auto`, also returns why the CPU was chosen when it was.
    pub fn open(device: Device) -> Result<(Backend, Option<String>)> {
        match device {
            Device::Cpu => Ok((Backend::Cpu, None)),
            #[cfg(feature = "cuda")]
            Device::Emulated => Ok((Backend::Emulated, None)),
            #[cfg(feature = "cuda")]
            Device::Cuda => Ok((Backend::Cuda(Box::new(Gpu::new(0)?)), None)),
            #[cfg(feature = "cuda")]
            Device::Auto => match Gpu::new(0) {
                Ok(g) => Ok((Backend::Cuda(Box::new(g)), None)),
                Err(e) => Ok((
                    Backend::Cpu,
                    Some(format!("using the CPU: no usable GPU ({e})")),
                )),
            },
            #[cfg(not(feature = "cuda"))]
            Device::Emulated | Device::Cuda => Err(Error::Invalid(NO_CUDA_FEATURE.into())),
            #[cfg(not(feature = "cuda"))]
            Device::Auto => Ok((
                Backend::Cpu,
                Some(format!("using the CPU: {NO_CUDA_FEATURE}")),
            )),
        }
    }

    /// Decodes host blocks into a host slice on this backend.
    pub fn dequantize<O: OutElem>(&self, ty: GgmlType, src: &[u8], out: &mut [O]) -> Result<()> {
        match self {
            Backend::Cpu => cpu::dequantize(ty, src, out),
            #[cfg(feature = "cuda")]
            Backend::Emulated => emulated::dequantize(ty, src, out),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => g.dequantize_host(ty, src, out),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            #[cfg(feature = "cuda")]
            Backend::Emulated => "emulated",
            #[cfg(feature = "cuda")]
            Backend::Cuda(_) => "cuda",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Cpu => write!(f, "CPU ({} threads)", rayon::current_num_threads()),
            #[cfg(feature = "cuda")]
            Backend::Emulated => f.write_str("host-emulated CUDA kernels"),
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => write!(f, "CUDA: {}", g.name()),
        }
    }
}
