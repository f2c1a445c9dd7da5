//! Where decoding runs: the CPU, the GPU, or the host-emulated GPU kernels.

use std::fmt;
use std::str::FromStr;

use crate::error::Result;
use crate::gpu::{Gpu, GpuOut};
use crate::types::GgmlType;
use crate::{cpu, emulated};

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
    Emulated,
    Cuda(Box<Gpu>),
}

impl Backend {
    /// Opens `device`. For `Auto`, also returns why the CPU was chosen when it was.
    pub fn open(device: Device) -> Result<(Backend, Option<String>)> {
        match device {
            Device::Cpu => Ok((Backend::Cpu, None)),
            Device::Emulated => Ok((Backend::Emulated, None)),
            Device::Cuda => Ok((Backend::Cuda(Box::new(Gpu::new(0)?)), None)),
            Device::Auto => match Gpu::new(0) {
                Ok(g) => Ok((Backend::Cuda(Box::new(g)), None)),
                Err(e) => Ok((
                    Backend::Cpu,
                    Some(format!("using the CPU: no usable GPU ({e})")),
                )),
            },
        }
    }

    /// Decodes host blocks into a host slice on this backend.
    pub fn dequantize<O: GpuOut>(&self, ty: GgmlType, src: &[u8], out: &mut [O]) -> Result<()> {
        match self {
            Backend::Cpu => cpu::dequantize(ty, src, out),
            Backend::Emulated => emulated::dequantize(ty, src, out),
            Backend::Cuda(g) => g.dequantize_host(ty, src, out),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Emulated => "emulated",
            Backend::Cuda(_) => "cuda",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Cpu => write!(f, "CPU ({} threads)", rayon::current_num_threads()),
            Backend::Emulated => f.write_str("host-emulated CUDA kernels"),
            Backend::Cuda(g) => write!(f, "CUDA: {}", g.name()),
        }
    }
}
