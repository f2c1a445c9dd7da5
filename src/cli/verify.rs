//! `verify`: every tensor decoded on the CPU and on a device, compared bit for bit.

use std::process::ExitCode;

use gguf_dequant::device::{Backend, DeviceChoice};
use gguf_dequant::gguf::{GgufFile, TensorInfo};
use gguf_dequant::with_out_elem;
use gguf_dequant::{cpu, try_vec, Error, OutType, Result};
use gguf_dequant::{to_bits, OutElem};

pub fn run(file: &GgufFile, device: DeviceChoice, dtype: OutType) -> Result<ExitCode> {
    if matches!(device, DeviceChoice::Cpu | DeviceChoice::Auto) {
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
        let line = with_out_elem!(dtype, O => compare::<O>(file, t, &backend));
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
fn compare<O: OutElem>(
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
    let nonfinite = got.iter().filter(|&&v| classify(v).1).count();
    let note = if nonfinite > 0 {
        format!(" ({nonfinite} NaN/Inf values, as on the CPU)")
    } else {
        String::new()
    };
    // NaN payloads are not part of the contract: a GPU returns the canonical NaN
    // where x86 propagates the input's payload, so any NaN matches any NaN.
    let differs = |i: usize| {
        let (g, _, g_nan) = classify(got[i]);
        let (w, _, w_nan) = classify(want[i]);
        g != w && !(g_nan && w_nan)
    };
    match (0..n).find(|&i| differs(i)) {
        None => Ok((true, format!("bit-identical, {n} values{note}"))),
        Some(i) => {
            let count = (0..n).filter(|&i| differs(i)).count();
            Ok((
                false,
                format!(
                    "DIFFERS at {count} of {n} values; first at element {i}: cpu {:#x}, {} {:#x}",
                    to_bits(want[i]),
                    backend.kind(),
                    to_bits(got[i])
                ),
            ))
        }
    }
}

/// `v`'s raw bits, and whether its exponent is all ones (infinite or NaN)
/// and whether it is a NaN, by the layout of its output type.
fn classify<O: OutElem>(v: O) -> (u32, bool, bool) {
    let (exponent, mantissa) = match O::OUT {
        OutType::F32 => (0x7f80_0000, 0x007f_ffff),
        OutType::F16 => (0x7c00, 0x03ff),
        OutType::BF16 => (0x7f80, 0x007f),
    };
    let bits = to_bits(v);
    let special = bits & exponent == exponent;
    (bits, special, special && bits & mantissa != 0)
}
