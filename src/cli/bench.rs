//! `gguf-dequant bench`: decode throughput per type, on the CPU and the GPU,
//! against references measured in the same run.
//!
//! Inputs are random valid blocks, by default 64 Mi elements per type: more
//! than a last-level cache holds, so the figures are what memory sustains, not
//! a cache. Each output is written once before timing (first-touch page faults
//! are not decode time), then each measurement is the median of `--runs` runs,
//! the runs of a decoder and of its references interleaved so that all see
//! the same machine:
//! - the **fill limit** (CPU): the input read once and the output written with
//!   the decoder's own stores over the same threads and chunks, nothing
//!   decoded (`cpu::fill_limit`): what a decoder costs at the least.
//!   `ratio_to_fill` is the decoder's rate over it: 1.0 is the limit;
//! - a **copy** of the output's bytes: the host's `copy_from_slice` over the
//!   same threads and chunks (ordinary stores, which read each line before
//!   writing it), or a device-to-device copy of the output's size on the GPU.
//!   `ratio_to_copy` is decoded elements per second over copied ones.

use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use gguf_dequant::cpu::{self, Level};
#[cfg(feature = "cuda")]
use gguf_dequant::gpu::Gpu;
#[cfg(feature = "peers")]
use gguf_dequant::out::to_bits;
use gguf_dequant::synth::{fill_random_blocks, Rng};
use gguf_dequant::with_out_elem;
use gguf_dequant::OutElem;
use gguf_dequant::{try_vec, Error, GgmlType, OutType, Result};
use rayon::prelude::*;
use serde_json::{json, Value};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Only this type (repeatable); every dequantizable type by default.
    #[arg(long = "type")]
    types: Vec<String>,
    /// Output type: f32, f16 or bf16.
    #[arg(long, default_value = "f32", value_parser = super::parse_dtype)]
    dtype: OutType,
    /// CPU threads (default: all).
    #[arg(long)]
    threads: Option<usize>,
    /// cpu, cuda, or all (the CPU, and the GPU when there is one).
    #[arg(long, default_value = "all")]
    device: BenchDevice,
    /// Elements decoded per type (rounded down to whole blocks).
    #[arg(long, default_value_t = 64 << 20)]
    elems: usize,
    /// Timed runs per measurement; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// CPU instruction-set level: scalar, avx2, avx512 (default: the best available).
    #[arg(long, value_parser = parse_level)]
    level: Option<Level>,
    /// Also time the peer crates on the same inputs and threads (needs the
    /// `peers` cargo feature).
    #[arg(long)]
    peers: bool,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BenchDevice {
    Cpu,
    Cuda,
    All,
}

fn parse_level(s: &str) -> std::result::Result<Level, String> {
    let level = Level::from_name(s).ok_or_else(|| {
        let names: Vec<_> = Level::ALL.iter().map(|l| l.name()).collect();
        format!("unknown level '{s}' (expected {})", names.join(", "))
    })?;
    if !level.is_available() {
        return Err(format!("this CPU cannot run the {s} kernels"));
    }
    Ok(level)
}

/// One measurement.
struct Row {
    ty: GgmlType,
    /// "cpu", "cuda", or a peer crate's name.
    who: String,
    device: &'static str,
    dtype: OutType,
    threads: Option<usize>,
    /// Seconds per decode, per copy and (CPU) per fill (medians).
    decode_s: f64,
    copy_s: f64,
    fill_s: Option<f64>,
    n: usize,
    in_bytes: usize,
    /// For peers: whether their output equals our reference, bit for bit.
    exact: Option<bool>,
}

impl Row {
    fn melem(&self) -> f64 {
        self.n as f64 / self.decode_s / 1e6
    }
    fn gbps(&self) -> f64 {
        (self.in_bytes + self.n * self.dtype.size()) as f64 / self.decode_s / 1e9
    }
    fn copy_melem(&self) -> f64 {
        self.n as f64 / self.copy_s / 1e6
    }
    fn ratio(&self) -> f64 {
        self.copy_s / self.decode_s
    }
    fn fill_melem(&self) -> Option<f64> {
        self.fill_s.map(|f| self.n as f64 / f / 1e6)
    }
    fn ratio_to_fill(&self) -> Option<f64> {
        self.fill_s.map(|f| f / self.decode_s)
    }
    fn json(&self) -> Value {
        json!({
            "type": self.ty.name(),
            "device": self.device,
            "dtype": self.dtype.name(),
            "threads": self.threads,
            "melem_per_s": round(self.melem()),
            "gb_per_s": round(self.gbps()),
            "copy_melem_per_s": round(self.copy_melem()),
            "ratio_to_copy": round(self.ratio()),
            "fill_melem_per_s": self.fill_melem().map(round),
            "ratio_to_fill": self.ratio_to_fill().map(round),
        })
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let types = select_types(&args.types)?;
    if args.runs == 0 {
        return Err(Error::Invalid("--runs must be at least 1".into()));
    }
    check_memory(args.elems, args.dtype)?;
    if args.peers && args.device == BenchDevice::Cuda && !cfg!(feature = "cuda-peers") {
        return Err(Error::Invalid(
            "--device cuda --peers needs a build with the cuda-peers feature (cargo build --release --features cuda-peers; see scripts/gpu-prepare.sh)".into(),
        ));
    }
    if args.peers && !cfg!(feature = "peers") {
        return Err(Error::Invalid(
            "--peers needs a build with the peers feature (cargo run --release --features peers -- bench --peers)".into(),
        ));
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or(cpus);
    // more threads than CPUs time contention, not decoding, and a huge count
    // would have the pool allocate for each before failing
    if !(1..=cpus).contains(&threads) {
        return Err(Error::Invalid(format!(
            "--threads {threads}: from 1 to the {cpus} CPUs this process may use"
        )));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Invalid(format!("building a pool of {threads} threads: {e}")))?;
    let level = args.level.unwrap_or_else(Level::best);
    let gpu = match args.device {
        BenchDevice::Cpu => None,
        BenchDevice::Cuda => Some(Gpu::new(0)?),
        BenchDevice::All => Gpu::new(0).ok(),
    };
    let cpu_too = args.device != BenchDevice::Cuda;
    let ctx = Ctx {
        args: &args,
        pool: &pool,
        threads,
        level,
    };
    let mut rows = Vec::new();
    let mut peer_rows = Vec::new();
    let mut rng = Rng(0xbe9c);
    for &ty in &types {
        let n = args.elems / ty.block_elems() * ty.block_elems();
        if n == 0 {
            return Err(Error::Invalid(format!(
                "--elems {} is less than one {ty} block",
                args.elems
            )));
        }
        let mut src = buffer::<u8>(n / ty.block_elems() * ty.block_bytes(), "--elems")?;
        fill_random_blocks(ty, &mut src, &mut rng);
        if !args.json {
            super::diagnostic(format_args!("{ty}...\r"));
        }
        with_out_elem!(args.dtype, O => {
            ctx.one_type::<O>(ty, &src, gpu.as_ref(), cpu_too, &mut rows, &mut peer_rows)?
        })
    }
    if args.json {
        print_json(&rows, &peer_rows, level, gpu.as_ref())?;
    } else {
        print_table(&rows, &peer_rows, threads, level, gpu.as_ref())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `n` default values, allocated fallibly: `check_memory` is an estimate
/// (and knows nothing where /proc/meminfo is missing), so a buffer memory
/// cannot hold is still an error naming `what`, never an abort.
fn buffer<T: Clone + Default>(n: usize, what: &str) -> Result<Vec<T>> {
    try_vec(n as u64).ok_or_else(|| {
        Error::Invalid(format!(
            "{what}: {n} elements of {} bytes do not fit in memory",
            std::mem::size_of::<T>()
        ))
    })
}

/// Refuses `--elems` whose buffers (the input, the output, the fill and the
/// copy's two) would not fit in the memory available, before allocating any.
fn check_memory(elems: usize, dtype: OutType) -> Result<()> {
    let need = (elems as u128) * (4 * dtype.size() as u128 + 5);
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
            line.split_whitespace().nth(1)?.parse::<u128>().ok()
        })
        .map_or(u128::MAX, |kb| kb * 1024);
    if need > available {
        return Err(Error::Invalid(format!(
            "--elems {elems} needs about {} MB of memory for its buffers; {} MB are available",
            need / 1_000_000,
            available / 1_000_000
        )));
    }
    Ok(())
}

fn select_types(names: &[String]) -> Result<Vec<GgmlType>> {
    if names.is_empty() {
        return Ok(GgmlType::dequantizable().collect());
    }
    names
        .iter()
        .map(|s| {
            GgmlType::from_name(s)
                .filter(|t| t.is_dequantizable())
                .ok_or_else(|| Error::Invalid(format!("unknown or undecodable type '{s}'")))
        })
        .collect()
}

struct Ctx<'a> {
    args: &'a BenchArgs,
    pool: &'a rayon::ThreadPool,
    threads: usize,
    level: Level,
}

impl Ctx<'_> {
    #[cfg_attr(not(feature = "peers"), allow(unused_variables, clippy::ptr_arg))]
    fn one_type<O: OutElem>(
        &self,
        ty: GgmlType,
        src: &[u8],
        gpu: Option<&Gpu>,
        cpu_too: bool,
        rows: &mut Vec<Row>,
        peer_rows: &mut Vec<Row>,
    ) -> Result<()> {
        let n = src.len() / ty.block_bytes() * ty.block_elems();
        let runs = self.args.runs;
        let row =
            |who: &str, device, threads, [decode_s, copy_s, fill_s]: [Option<f64>; 3], exact| Row {
                ty,
                who: who.to_string(),
                device,
                dtype: O::OUT,
                threads,
                decode_s: decode_s.unwrap_or(f64::NAN),
                copy_s: copy_s.unwrap_or(f64::NAN),
                fill_s,
                n,
                in_bytes: src.len(),
                exact,
            };
        if cpu_too {
            let mut out = buffer::<O>(n, "--elems")?;
            let mut fill = buffer::<O>(n, "--elems")?;
            let (mut from, mut to) = (buffer::<O>(n, "--elems")?, buffer::<O>(n, "--elems")?);
            from.fill(O::from_f32(1.0));
            let streaming = std::mem::size_of_val(&out[..]) >= cpu::fast::STREAM_MIN_BYTES;
            let (level, pool) = (self.level, self.pool);
            let [d, c, f] = self.medians(
                runs,
                [
                    &mut || {
                        pool.install(|| cpu::dequantize_with(level, streaming, ty, src, &mut out))
                    },
                    &mut || self.host_copy(&from, &mut to),
                    &mut || pool.install(|| cpu::fill_limit(level, streaming, ty, src, &mut fill)),
                ],
            )?;
            rows.push(row(
                "cpu",
                "cpu",
                Some(self.threads),
                [Some(d), Some(c), Some(f)],
                None,
            ));
            if self.args.peers {
                #[cfg(feature = "peers")]
                for peer in gguf_dequant::peers::PEERS {
                    let Some(decode) = peer.decoder::<O>(ty) else {
                        continue;
                    };
                    let [d, c] = self.medians(
                        runs,
                        [
                            &mut || {
                                pool.install(|| decode(src, &mut out));
                                Ok(())
                            },
                            &mut || self.host_copy(&from, &mut to),
                        ],
                    )?;
                    let mut want = buffer::<O>(n, "--elems")?;
                    cpu::dequantize(ty, src, &mut want)?;
                    let exact = out
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| to_bits(*a) == to_bits(*b));
                    peer_rows.push(row(
                        peer.name,
                        "cpu",
                        Some(self.threads),
                        [Some(d), Some(c), None],
                        Some(exact),
                    ));
                }
            }
            // freed before the GPU's turn
            drop((from, to, out, fill));
        }
        if let Some(g) = gpu {
            let (d, c) = gpu_times::<O>(g, ty, src, runs)?;
            rows.push(row("cuda", "cuda", None, [Some(d), Some(c), None], None));
            // candle-core's CUDA decoders, on the same blocks in the same
            // context; a failure of theirs costs their row, not ours.
            #[cfg(feature = "cuda-peers")]
            if self.args.peers {
                use gguf_dequant::peers_cuda;
                match peers_cuda::time_candle::<O>(g, ty, src, runs) {
                    Ok(Some(t)) => peer_rows.push(row(
                        peers_cuda::NAME,
                        "cuda",
                        None,
                        [Some(t.decode_s), Some(c), None],
                        Some(t.exact),
                    )),
                    Ok(None) => {}
                    Err(e) => errln!(
                        "bench: no {} row for {ty} to {}: {e}",
                        peers_cuda::NAME,
                        O::OUT.name()
                    ),
                }
            }
        }
        Ok(())
    }

    /// The host copy reference: the output's bytes over the pool, in the
    /// chunks the decoder uses.
    fn host_copy<O: OutElem>(&self, from: &[O], to: &mut [O]) -> Result<()> {
        self.pool.install(|| {
            to.par_chunks_mut(1 << 16)
                .zip(from.par_chunks(1 << 16))
                .for_each(|(t, f)| t.copy_from_slice(f))
        });
        Ok(())
    }

    /// Medians of `runs` timed runs of each of `fs`, interleaved so that all
    /// see the same machine, after one untimed run of each.
    fn medians<const N: usize>(
        &self,
        runs: usize,
        mut fs: [&mut dyn FnMut() -> Result<()>; N],
    ) -> Result<[f64; N]> {
        let mut times: [Vec<f64>; N] = std::array::from_fn(|_| Vec::new());
        for f in fs.iter_mut() {
            f()?;
        }
        for _ in 0..runs {
            for (f, t) in fs.iter_mut().zip(times.iter_mut()) {
                let start = Instant::now();
                f()?;
                t.push(start.elapsed().as_secs_f64());
            }
        }
        Ok(times.map(median))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Without the `cuda` feature there is never a GPU to time.
#[cfg(not(feature = "cuda"))]
enum Gpu {}

#[cfg(not(feature = "cuda"))]
impl Gpu {
    fn new(_: usize) -> Result<Gpu> {
        Err(Error::Invalid(gguf_dequant::device::NO_CUDA_FEATURE.into()))
    }
    fn name(&self) -> String {
        match *self {}
    }
}

#[cfg(not(feature = "cuda"))]
#[allow(clippy::extra_unused_type_parameters)] // the signature of the GPU build's
fn gpu_times<O: OutElem>(g: &Gpu, _: GgmlType, _: &[u8], _: usize) -> Result<(f64, f64)> {
    match *g {}
}

/// Decode and device-to-device copy of the output's size on the GPU, timed
/// with CUDA events (medians), after one untimed run of each.
#[cfg(feature = "cuda")]
fn gpu_times<O: OutElem>(g: &Gpu, ty: GgmlType, src: &[u8], runs: usize) -> Result<(f64, f64)> {
    use cudarc::driver::sys::CUevent_flags;
    let n = src.len() / ty.block_bytes() * ty.block_elems();
    let s = g.stream();
    let dev_src = s
        .clone_htod(src)
        .map_err(|e| Error::cuda("copying blocks", e))?;
    // SAFETY: written by the untimed decode before anything reads it.
    let mut out = unsafe { s.alloc::<O>(n) }.map_err(|e| Error::cuda("allocating", e))?;
    let from = s
        .alloc_zeros::<O>(n)
        .map_err(|e| Error::cuda("allocating", e))?;
    let mut to = s
        .alloc_zeros::<O>(n)
        .map_err(|e| Error::cuda("allocating", e))?;
    let timed = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        let start = s
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| Error::cuda("event", e))?;
        f()?;
        let end = s
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .map_err(|e| Error::cuda("event", e))?;
        Ok(start
            .elapsed_ms(&end)
            .map_err(|e| Error::cuda("timing", e))? as f64
            / 1e3)
    };
    let mut decode = || g.dequantize(ty, &dev_src.as_view(), &mut out.as_view_mut());
    let mut copy = || {
        s.memcpy_dtod(&from, &mut to)
            .map_err(|e| Error::cuda("copying", e))
    };
    decode()?;
    copy()?;
    g.synchronize()?;
    let (mut d, mut c) = (Vec::new(), Vec::new());
    for _ in 0..runs.max(5) {
        c.push(timed(&mut copy)?);
        d.push(timed(&mut decode)?);
    }
    Ok((median(d), median(c)))
}

fn machine(level: Level, gpu: Option<&Gpu>) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string());
    json!({
        "cpu": model,
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "os": std::env::consts::OS,
        "kernel": kernel,
        "arch": std::env::consts::ARCH,
        "simd": level.name(),
        "gpu": gpu.map(|g| g.name()),
    })
}

fn print_json(rows: &[Row], peers: &[Row], level: Level, gpu: Option<&Gpu>) -> Result<()> {
    let results: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = r.json();
            if let Some(best) = best_peer(peers, r) {
                v["best_peer"] = json!(best.who);
                v["ratio_to_best_peer"] = json!(round(best.decode_s / r.decode_s));
            }
            v
        })
        .collect();
    let mut out = json!({ "machine": machine(level, gpu), "results": results });
    if !peers.is_empty() {
        out["peers"] = peers
            .iter()
            .map(|p| {
                let mut v = p.json();
                v["peer"] = json!(p.who);
                v["bit_exact"] = json!(p.exact);
                v
            })
            .collect();
    }
    outln!("{}", serde_json::to_string_pretty(&out).unwrap());
    Ok(())
}

/// The fastest peer on `r`'s type and device.
fn best_peer<'a>(peers: &'a [Row], r: &Row) -> Option<&'a Row> {
    peers
        .iter()
        .filter(|p| p.ty == r.ty && p.device == r.device)
        .min_by(|a, b| a.decode_s.total_cmp(&b.decode_s))
}

fn print_table(
    rows: &[Row],
    peers: &[Row],
    threads: usize,
    level: Level,
    gpu: Option<&Gpu>,
) -> Result<()> {
    let m = machine(level, gpu);
    outln!(
        "{} ({} cores, {} kernels), {threads} CPU thread(s){}",
        m["cpu"].as_str().unwrap_or("unknown CPU"),
        m["cores"],
        level.name(),
        gpu.map(|g| format!(", {}", g.name())).unwrap_or_default()
    );
    outln!(
        "{:<8} {:<6} {:<5} {:>10} {:>8} {:>10} {:>7} {:>10} {:>7}  fastest peer",
        "type",
        "device",
        "dtype",
        "Melem/s",
        "GB/s",
        "copy Me/s",
        "x copy",
        "fill Me/s",
        "x fill"
    );
    for r in rows {
        let peer = best_peer(peers, r)
            .map(|p| {
                format!(
                    "{} {:.0} Melem/s{}: {:.2}x",
                    p.who,
                    p.melem(),
                    if p.exact == Some(false) {
                        " (inexact)"
                    } else {
                        ""
                    },
                    p.decode_s / r.decode_s
                )
            })
            .unwrap_or_default();
        let opt = |v: Option<f64>, prec: usize| {
            v.map(|v| format!("{v:.prec$}"))
                .unwrap_or_else(|| "-".into())
        };
        outln!(
            "{:<8} {:<6} {:<5} {:>10.0} {:>8.2} {:>10.0} {:>7.2} {:>10} {:>7}  {peer}",
            r.ty.name(),
            r.device,
            r.dtype.name(),
            r.melem(),
            r.gbps(),
            r.copy_melem(),
            r.ratio(),
            opt(r.fill_melem(), 0),
            opt(r.ratio_to_fill(), 2),
        );
    }
    Ok(())
}
