//! The default job (`gguf-dequant` with no arguments): a GGUF file written in
//! memory with random valid blocks of every type, read back, decoded on the CPU
//! (and the GPU when there is one), checked to the bit against the scalar
//! reference, the host-emulated kernels and the kernels' PTX run by the
//! interpreter, with a table of throughput.

use std::process::ExitCode;
use std::time::Instant;

use gguf_dequant::gguf::{GgufFile, GgufWriter, Value};
use gguf_dequant::synth::{random_blocks, Rng};
use gguf_dequant::{cpu, GgmlType, Result};

/// Elements per tensor: big enough to time, small enough to run in seconds.
/// `GDQ_DEFAULT_JOB_ROWS` sets fewer rows (the tests use it); more than 256
/// are not taken, so that no setting sizes the buffers past that.
fn shape() -> [u64; 2] {
    let rows = std::env::var("GDQ_DEFAULT_JOB_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| (1..=256).contains(r))
        .unwrap_or(256);
    [4096, rows]
}

pub fn run() -> Result<ExitCode> {
    let ne = shape();
    let mut w = GgufWriter::new();
    w.add_kv(
        "general.name",
        Value::String("gguf-dequant default job: random valid blocks".into()),
    )?;
    let mut rng = Rng(0x6767_7566);
    for ty in GgmlType::dequantizable() {
        let n = (ne[0] * ne[1]) as usize / ty.block_elems();
        w.add_tensor(
            format!("random.{}", ty.name()),
            ty,
            &ne,
            random_blocks(ty, n, &mut rng),
        )?;
    }
    let file = GgufFile::from_bytes(w.to_bytes())?;
    let devices = devices::Devices::open();
    outln!(
        "gguf-dequant: {} tensors of {} elements, one per type, decoded to f32 on the CPU ({} threads){}",
        file.tensors().len(),
        ne[0] * ne[1],
        gguf_dequant::pool::current_num_threads(),
        devices
            .gpu_name()
            .map(|g| format!(" and {g}"))
            .unwrap_or_default()
    );
    outln!();
    outln!(
        "{:<8} {:>6} {:>12} {:>12}  check against the scalar reference",
        "type",
        "bpw",
        "CPU Melem/s",
        if devices.gpu_name().is_some() {
            "GPU Melem/s"
        } else {
            ""
        },
    );
    let mut all_ok = true;
    for t in file.tensors() {
        let src = file.tensor_data(t)?;
        let n = t.n_elems as usize;
        let mut want = vec![0f32; n];
        cpu::dequantize_reference(t.ty, src, &mut want)?;
        let mut got = vec![f32::NAN; n];
        let cpu_rate = best_rate(n, || cpu::dequantize(t.ty, src, &mut got))?;
        let mut checks = vec![("cpu", same_bits(&got, &want))];
        let gpu_rate = devices
            .check(t.ty, src, &want, &mut checks)?
            .map(|r| format!("{r:.0}"))
            .unwrap_or_default();
        let ok = checks.iter().all(|c| c.1);
        all_ok &= ok;
        let verdict = if ok {
            format!(
                "bit-identical ({})",
                checks.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
            )
        } else {
            format!(
                "MISMATCH: {}",
                checks
                    .iter()
                    .filter(|c| !c.1)
                    .map(|c| c.0)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        outln!(
            "{:<8} {:>6.3} {:>12.0} {:>12}  {verdict}",
            t.ty.name(),
            t.ty.bits_per_weight(),
            cpu_rate,
            gpu_rate
        );
    }
    outln!();
    if all_ok {
        outln!("every type decoded bit-identically on every path");
        Ok(ExitCode::SUCCESS)
    } else {
        outln!("some paths disagree with the reference");
        Ok(ExitCode::FAILURE)
    }
}

/// Million elements per second of the fastest of a few runs (the first warms up).
fn best_rate(n: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(n as f64 / best / 1e6)
}

/// The paths checked besides the CPU's: with the `cuda` feature, the
/// host-emulated kernels, the PTX of every target the build has (through the
/// interpreter), and the GPU when there is one.
#[cfg(feature = "cuda")]
mod devices {
    use gguf_dequant::gpu::Gpu;
    use gguf_dequant::{emulated, ptx, Error, GgmlType, Result};

    use super::{best_rate, same_bits};

    pub struct Devices {
        gpu: Option<Gpu>,
    }

    impl Devices {
        pub fn open() -> Self {
            Devices {
                gpu: Gpu::new(0).ok(),
            }
        }

        pub fn gpu_name(&self) -> Option<String> {
            self.gpu.as_ref().map(Gpu::name)
        }

        /// Decodes `src` on each path, pushing whether it matched `want`;
        /// returns the GPU's rate (Melem/s) where there is one.
        pub fn check(
            &self,
            ty: GgmlType,
            src: &[u8],
            want: &[f32],
            checks: &mut Vec<(&'static str, bool)>,
        ) -> Result<Option<f64>> {
            let n = want.len();
            let mut emu = vec![f32::NAN; n];
            emulated::dequantize(ty, src, &mut emu)?;
            checks.push(("emulated kernels", same_bits(&emu, want)));
            let mut ptx_ok = None;
            for arch in ptx::targets() {
                let mut out = vec![f32::NAN; n];
                ptx::dequantize(arch, ty, src, &mut out)?;
                ptx_ok = Some(ptx_ok.unwrap_or(true) && same_bits(&out, want));
            }
            if let Some(ok) = ptx_ok {
                checks.push(("interpreted PTX", ok));
            }
            let Some(g) = &self.gpu else {
                return Ok(None);
            };
            let mut out = vec![f32::NAN; n];
            g.dequantize_host(ty, src, &mut out)?;
            checks.push(("gpu", same_bits(&out, want)));
            let dev_src = g
                .stream()
                .clone_htod(src)
                .map_err(|e| Error::cuda("copying blocks to the device", e))?;
            let mut dev_out = g
                .stream()
                .alloc_zeros::<f32>(n)
                .map_err(|e| Error::cuda("allocating the output", e))?;
            best_rate(n, || {
                g.dequantize(ty, &dev_src.as_view(), &mut dev_out.as_view_mut())?;
                g.synchronize()
            })
            .map(Some)
        }
    }
}

/// Without the `cuda` feature, the CPU alone.
#[cfg(not(feature = "cuda"))]
mod devices {
    use gguf_dequant::{GgmlType, Result};

    pub struct Devices;

    impl Devices {
        pub fn open() -> Self {
            Devices
        }
        pub fn gpu_name(&self) -> Option<String> {
            None
        }
        pub fn check(
            &self,
            _: GgmlType,
            _: &[u8],
            _: &[f32],
            _: &mut Vec<(&'static str, bool)>,
        ) -> Result<Option<f64>> {
            Ok(None)
        }
    }
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
