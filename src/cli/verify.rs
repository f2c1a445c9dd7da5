//! `verify`: every tensor decoded on the CPU and on a device, compared bit for bit.

use std::process::ExitCode;

use gguf_dequant::device::{Backend, Device};
use gguf_dequant::gguf::{GgufFile, TensorInfo};
use gguf_dequant::OutElem;
use gguf_dequant::{cpu, try_vec, Error, OutType, Result};
use half::{bf16, f16};

pub fn run(file: &GgufFile, device: Device, dtype: OutType) -> Result<ExitCode> {
    if matches!(device, Device::Cpu | Device::Auto) {
        return Err(Error::Invalid(
            "verify compares the CPU with --device cuda, emulated or ptx".into(),
        ));
    }
    let (backend, _) = Backend::open(device)?;
    outln!(
        "verifying {} tensors, {dtype} output: CPU against {backend}",
        file.tensors().len()
    );
    let mut failures = 0;
    for t in file.tensors() {
        let line = match dtype {
            OutType::F32 => compare::<f32>(file, t, &backend),
            OutType::F16 => compare::<f16>(file, t, &backend),
            OutType::BF16 => compare::<bf16>(file, t, &backend),
        };
        let (ok, text) = match line {
            Ok(r) => r,
            Err(e) => (false, format!("error: {e}")),
        };
        failures += usize::from(!ok);
        outln!(
            "  {:<40} {:<8} {text}",
            gguf_dequant::text::escape_cut(&t.name, 64),
            t.ty.name()
        );
    }
    if failures == 0 {
        outln!("all {} tensors bit-identical", file.tensors().len());
        Ok(ExitCode::SUCCESS)
    } else {
        outln!(
            "{failures} of {} tensors differ or failed",
            file.tensors().len()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// (matched, the report line).
fn compare<O: OutElem + ToBits>(
    file: &GgufFile,
    t: &TensorInfo,
    backend: &Backend,
) -> Result<(bool, String)> {
    // both outputs before the input: a tensor too large for memory is an
    // error at once, never an abort
    let too_large = || Error::Length(format!("{} elements do not fit in memory", t.n_elems));
    let mut want = try_vec::<O>(t.n_elems).ok_or_else(too_large)?;
    let mut got = try_vec::<O>(t.n_elems).ok_or_else(too_large)?;
    let n = want.len();
    let src = file.read_tensor_all(t)?;
    cpu::dequantize(t.ty, &src, &mut want).map_err(|e| e.for_tensor(&t.name))?;
    // Poison the device output so an element the kernel missed cannot pass.
    got.fill(O::from_f32(f32::NAN));
    backend.decode_tensor(file, t, &mut got)?;
    let nonfinite = got.iter().filter(|v| !v.is_finite_value()).count();
    let note = if nonfinite > 0 {
        format!(" ({nonfinite} NaN/Inf values, as on the CPU)")
    } else {
        String::new()
    };
    // NaN payloads are not part of the contract: a GPU returns the canonical NaN
    // where x86 propagates the input's payload, so any NaN matches any NaN.
    let differs = |i: usize| {
        got[i].bits() != want[i].bits() && !(got[i].is_nan_value() && want[i].is_nan_value())
    };
    match (0..n).find(|&i| differs(i)) {
        None => Ok((true, format!("bit-identical, {n} values{note}"))),
        Some(i) => {
            let count = (0..n).filter(|&i| differs(i)).count();
            Ok((
                false,
                format!(
                    "DIFFERS at {count} of {n} values; first at element {i}: cpu {:#x}, {} {:#x}",
                    want[i].bits(),
                    backend.kind(),
                    got[i].bits()
                ),
            ))
        }
    }
}

pub trait ToBits: Copy {
    fn bits(self) -> u32;
    fn is_finite_value(self) -> bool;
    fn is_nan_value(self) -> bool;
}
macro_rules! to_bits {
    ($($t:ty),*) => {$(
        impl ToBits for $t {
            fn bits(self) -> u32 {
                self.to_bits() as u32
            }
            fn is_finite_value(self) -> bool {
                self.is_finite()
            }
            fn is_nan_value(self) -> bool {
                self.is_nan()
            }
        }
    )*};
}
to_bits!(f32, f16, bf16);
