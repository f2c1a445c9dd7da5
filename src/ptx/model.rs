//! A performance model of the GPU kernels, measured by the interpreter.
//!
//! A sample launch of each kernel is run with a probe that records, per warp
//! of 32 threads, the warp-instructions issued (a thread's n-th issue of an
//! instruction and the other threads' n-th are one warp-instruction: the
//! warp reconverges after every divergence, as these loops do; an
//! instruction whose guard is false is issued all the same) by class,
//! and for every global load and store the distinct 32-byte sectors the
//! warp's threads touch (coalescing). Over the whole launch, the distinct
//! sectors of the input and output are the DRAM traffic; the tables are
//! taken as cache-resident (a few KiB, read by every block) and left out.
//!
//! A roofline then predicts, for a GPU given by its SM count, clock, issue
//! rates per class (the CUDA C++ Programming Guide's throughput table for
//! compute capability 9.0, and NVIDIA's account of the SM's pipes: IMAD runs
//! on one of the two FMA pipes, the rest of integer work on the ALU) and the
//! device-to-device copy bandwidth measured on the lent machines, the time
//! per element as the largest of: DRAM bytes at the copy's bandwidth,
//! instruction issue (4 warp-instructions a clock an SM), the FMA pipes (f32
//! arithmetic and 32-bit integer multiplies 4 together, the multiplies 2),
//! the integer ALU (2; a 64-bit integer operation counted twice),
//! conversions involving floats (0.5), load/store issue (1) and L1 sectors
//! (4 a clock). Register moves and integer `cvt`s that only zero-extend or
//! narrow are counted but not costed: SASS registers are 32 bits, so ptxas
//! folds them (see [`Class::Rename`]). Its ratio to the copy is the copy's
//! time for the ideal bytes (compressed in + decoded out) over that.
//!
//! What it leaves out: PTX is not SASS (ptxas also folds masks after narrow
//! loads, fuses logic into three-input LOP3s and moves shifts and adds onto
//! the FMA pipe as IMADs, so the ALU counts are upper bounds, while 64-bit
//! arithmetic expands; `scripts/sass-check.py` compares every kernel with
//! ptxas's sm_90 SASS),
//! latency (it assumes enough warps in flight to hide it: occupancy from
//! ptxas's register counts is reported beside the prediction), the tail of
//! a grid, and cache misses on the tables.

use std::collections::{HashMap, HashSet};

use super::exec::{self, LaunchConfig, Probe};
use super::memory::{is_table_address, Memory};
use super::parse::{Int, Kernel, Module, Op, Ty};
use super::{oom, other};
use crate::error::{CudaError, CudaErrorKind, Error, Result};
use crate::kernels::{launches, KernelInfo, MAX_GRID};
use crate::types::{GgmlType, OutType};

/// Instruction classes of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// 32-bit and narrower integer, logic, shifts, compares, selects, moves.
    Int,
    /// 64-bit integer arithmetic (two issue slots).
    Int64,
    /// 32-bit integer multiplies (`mul.lo`, `mul.wide`, `mad.lo`): SASS's
    /// IMAD, which runs on the FMA pipe beside f32 arithmetic, not on the
    /// integer ALU.
    IntMul,
    /// f32 add, subtract, multiply, negate.
    F32,
    /// Conversions to or from a float type.
    Convert,
    /// Global loads (input and tables) and parameter loads.
    Load,
    /// Global stores.
    Store,
    /// Branches and predicate sets that steer them.
    Branch,
    /// Register moves and integer `cvt`s that only widen without sign or
    /// narrow: SASS registers are 32 bits, a 64-bit value a pair of them and
    /// narrow loads zero-extend, so ptxas folds these into their neighbours
    /// (a move of a constant becomes the consumer's immediate, a zero
    /// extension the zero register). Counted, not costed.
    Rename,
}

impl Class {
    /// Every class, in report order.
    pub const ALL: [Class; 9] = [
        Class::Int,
        Class::Int64,
        Class::IntMul,
        Class::F32,
        Class::Convert,
        Class::Load,
        Class::Store,
        Class::Branch,
        Class::Rename,
    ];
    /// The class's name in reports (`int`, `f32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Class::Int => "int",
            Class::Int64 => "int64",
            Class::IntMul => "int_mul",
            Class::F32 => "f32",
            Class::Convert => "convert",
            Class::Load => "load",
            Class::Store => "store",
            Class::Branch => "branch",
            Class::Rename => "rename",
        }
    }
}

fn class_of(op: Op) -> Class {
    let wide = |t: Int| {
        if t.bits > 32 {
            Class::Int64
        } else {
            Class::Int
        }
    };
    match op {
        Op::MadLo(t) | Op::MulLo(t) if t.bits <= 32 => Class::IntMul,
        Op::MulWide(t) if t.bits <= 32 => Class::IntMul,
        Op::Add(t) | Op::Sub(t) | Op::MadLo(t) | Op::MulLo(t) | Op::Shl(t) | Op::Shr(t) => wide(t),
        Op::MulWide(t) => wide(Int {
            bits: t.bits * 2,
            signed: t.signed,
        }),
        Op::And(t) | Op::Or(t) | Op::Xor(t) | Op::Not(t) | Op::Bfe(t) | Op::Bfi(t) => wide(t),
        Op::Mov => Class::Rename,
        Op::Unpack { .. } => Class::Rename,
        Op::Prmt | Op::Pack { .. } => Class::Int,
        Op::Setp { ty: Ty::F32, .. } => Class::F32,
        Op::Setp { .. } | Op::Selp(_) => Class::Int,
        Op::FAdd | Op::FSub | Op::FMul | Op::FNeg | Op::FAbs => Class::F32,
        // a zero extension, or a narrowing: the low register(s) of the source
        Op::Cvt {
            d: Ty::Int(d),
            a: Ty::Int(a),
        } if d.bits <= a.bits || !a.signed => Class::Rename,
        Op::Cvt {
            d: Ty::Int(_),
            a: Ty::Int(_),
        } => Class::Int,
        Op::Cvt { .. } | Op::CvtPair { .. } => Class::Convert,
        Op::LdParam { .. } | Op::LdGlobal { .. } => Class::Load,
        Op::StGlobal { .. } => Class::Store,
        Op::Bra | Op::Ret => Class::Branch,
    }
}

/// What one sample launch measured.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Output elements the launch decoded.
    pub elements: u64,
    /// Compressed bytes in plus decoded bytes out.
    pub ideal_bytes: u64,
    /// Distinct 32-byte sectors of the input and output touched, in bytes.
    pub dram_bytes: u64,
    /// Warp-instructions by class.
    pub warp_insts: HashMap<Class, u64>,
    /// Sectors summed over warp-level global loads and stores (L1 wavefronts).
    pub l1_sectors: u64,
    /// Warp-level global loads of tables, and the sectors they touched.
    pub table_loads: u64,
    /// Sectors the table loads touched.
    pub table_sectors: u64,
}

impl Counts {
    /// Warp-instructions of every class, renames included.
    pub fn total_warp_insts(&self) -> u64 {
        self.warp_insts.values().sum()
    }
    /// Warp-instructions that cost an issue slot (renames do not).
    pub fn issued_warp_insts(&self) -> u64 {
        self.total_warp_insts() - self.warp_insts.get(&Class::Rename).unwrap_or(&0)
    }
    /// Warp-instructions of class `c` per output element.
    pub fn per_element(&self, c: Class) -> f64 {
        *self.warp_insts.get(&c).unwrap_or(&0) as f64 / self.elements as f64
    }
}

/// A global access of a thread: (instruction, its occurrence in the
/// thread, address, bytes).
type Access = (u32, u32, u64, u64);

/// The probe. Per thread, how often each instruction issued; per warp, the
/// most any of its threads issued each (the warp issues it that often:
/// threads reconverge), and its threads' global accesses, merged into
/// warp-level accesses when the warp's last thread ends.
struct WarpProbe<'k> {
    kernel: &'k Kernel,
    /// Issues of each instruction by the thread under way.
    occurrence: Vec<u32>,
    /// The most issues of each instruction by a thread of the warp.
    warp_max: Vec<u32>,
    accesses: Vec<Access>,
    threads_in_warp: u32,
    counts: Counts,
    dram: HashSet<u64>,
}

impl WarpProbe<'_> {
    fn end_thread(&mut self) {
        for (m, o) in self.warp_max.iter_mut().zip(self.occurrence.iter_mut()) {
            *m = (*m).max(*o);
            *o = 0;
        }
    }

    fn flush(&mut self) {
        self.end_thread();
        for (pc, m) in self.warp_max.iter_mut().enumerate() {
            if *m > 0 {
                let class = class_of(self.kernel.code[pc].op);
                *self.counts.warp_insts.entry(class).or_insert(0) += *m as u64;
                *m = 0;
            }
        }
        // (pc, occurrence) -> the sectors its threads' accesses touch
        let mut insts: HashMap<(u32, u32), HashSet<u64>> = HashMap::new();
        for &(pc, k, addr, len) in &self.accesses {
            insts
                .entry((pc, k))
                .or_default()
                .extend(addr / 32..=(addr + len - 1) / 32);
        }
        for sectors in insts.values() {
            let tables = sectors
                .iter()
                .filter(|&&s| is_table_address(s * 32))
                .count() as u64;
            if tables > 0 {
                self.counts.table_loads += 1;
                self.counts.table_sectors += tables;
            }
            self.dram.extend(
                sectors
                    .iter()
                    .copied()
                    .filter(|&s| !is_table_address(s * 32)),
            );
            self.counts.l1_sectors += sectors.len() as u64;
        }
        self.accesses.clear();
        self.threads_in_warp = 0;
    }
}

impl Probe for WarpProbe<'_> {
    fn thread(&mut self, index: u32) {
        if index.is_multiple_of(32) && self.threads_in_warp > 0 {
            self.flush();
        } else {
            self.end_thread();
        }
        self.threads_in_warp += 1;
    }
    fn step(&mut self, pc: usize, access: Option<(u64, u64)>) {
        let k = self.occurrence[pc];
        self.occurrence[pc] += 1;
        if let Some((addr, len)) = access {
            self.accesses.push((pc as u32, k, addr, len));
        }
    }
    fn skipped(&mut self, pc: usize) {
        self.occurrence[pc] += 1;
    }
}

/// Runs a sample launch of `kernel` over random blocks and counts.
fn measure(module: &Module, ty: GgmlType, out: OutType) -> Result<Counts> {
    let k = KernelInfo::of(ty).ok_or(Error::Unsupported { tensor: None, ty })?;
    // 64 thread blocks of work: enough warps for stable per-element counts
    let n_blocks = (64 * crate::kernels::THREADS / k.parts) as usize;
    let src = crate::synth::random_blocks(
        ty,
        n_blocks * k.qk as usize / ty.block_elems(),
        &mut crate::synth::Rng(7),
    );
    let n = n_blocks as u64 * k.qk as u64;
    let size = out.size() as u64;
    let mut mem = Memory::new(module);
    let input = mem.alloc("input", src.len()).map_err(oom)?;
    let output = mem.alloc("output", (n * size) as usize).map_err(oom)?;
    mem.write_host(input, &src).map_err(other)?;
    let plan = launches(ty, n, true).ok_or(Error::Unsupported { tensor: None, ty })?;
    let l = plan[0];
    let (grid, threads) = l.kernel.geometry(l.n_blocks, MAX_GRID);
    let params = [input, output, l.n_blocks];
    let config = LaunchConfig {
        grid: [grid, 1, 1],
        block: [threads, 1, 1],
        params: &params,
    };
    let mut counts = profile(module, &l.kernel.symbol(out), &mut mem, &config)?;
    counts.elements = l.n_blocks * l.kernel.qk as u64;
    counts.ideal_bytes = src.len() as u64 + n * size;
    Ok(counts)
}

/// Runs one launch with the warp probe: warp-instructions by class, L1 and
/// table sectors, and the launch's distinct DRAM sectors (`dram_bytes`);
/// `elements` and `ideal_bytes` are left for the caller.
pub fn profile(
    module: &Module,
    kernel: &str,
    mem: &mut Memory,
    config: &LaunchConfig,
) -> Result<Counts> {
    let kernel = module
        .kernel(kernel)
        .ok_or_else(|| other(format!("no kernel {kernel} in the PTX")))?;
    exec::check_config(kernel, config).map_err(other)?;
    let mut probe = WarpProbe {
        kernel,
        occurrence: vec![0; kernel.code.len()],
        warp_max: vec![0; kernel.code.len()],
        accesses: Vec::new(),
        threads_in_warp: 0,
        counts: Counts::default(),
        dram: HashSet::new(),
    };
    exec::run(kernel, mem, config, &mut probe)
        .map_err(|s| CudaError::new(CudaErrorKind::LaunchFailed, s.what))?;
    probe.flush();
    let mut counts = probe.counts;
    counts.dram_bytes = probe.dram.len() as u64 * 32;
    Ok(counts)
}

/// A GPU of the model.
#[derive(Clone, Copy, Debug)]
pub struct Gpu {
    /// The GPU's name.
    pub name: &'static str,
    /// Streaming multiprocessors.
    pub sms: u32,
    /// Boost clock, GHz.
    pub clock_ghz: f64,
    /// Device-to-device copy, bytes read plus written per second.
    pub copy_bytes_per_s: f64,
}

/// The lent machines: H100 SXM and H200 (132 SMs, 1.98 GHz boost, from their
/// datasheets); copy bandwidths as measured on them.
pub const GPUS: [Gpu; 2] = [
    Gpu {
        name: "H100",
        sms: 132,
        clock_ghz: 1.98,
        copy_bytes_per_s: 3.0e12,
    },
    Gpu {
        name: "H200",
        sms: 132,
        clock_ghz: 1.98,
        copy_bytes_per_s: 4.3e12,
    },
];

/// Warp-instructions per clock per SM, by what limits them (compute
/// capability 9.0).
const ISSUE: f64 = 4.0;
const F32_RATE: f64 = 4.0;
const INT_RATE: f64 = 2.0;
/// IMAD issues to one of the SM's two FMA pipes (the "heavy" one), f32
/// arithmetic to either.
const IMAD_RATE: f64 = 2.0;
const CONVERT_RATE: f64 = 0.5;
const LSU_RATE: f64 = 1.0;
const L1_SECTORS: f64 = 4.0;

/// A prediction for one kernel on one GPU.
#[derive(Clone, Debug)]
pub struct Prediction {
    /// The GPU's name.
    pub gpu: &'static str,
    /// Predicted output elements per second.
    pub elements_per_s: f64,
    /// Ideal bytes at the copy's bandwidth, over the predicted time.
    pub ratio_to_copy: f64,
    /// What the time is bound by.
    pub bound: &'static str,
}

/// The roofline of `c` on `g`.
pub fn predict(c: &Counts, g: &Gpu) -> Prediction {
    let per_s = g.sms as f64 * g.clock_ghz * 1e9;
    let w = |cl: Class| *c.warp_insts.get(&cl).unwrap_or(&0) as f64;
    let int_slots = w(Class::Int) + 2.0 * w(Class::Int64);
    let issue = c.issued_warp_insts() as f64 + w(Class::Int64);
    let limits = [
        ("DRAM", c.dram_bytes as f64 / g.copy_bytes_per_s),
        ("issue", issue / (ISSUE * per_s)),
        (
            "FMA pipe",
            ((w(Class::F32) + w(Class::IntMul)) / F32_RATE).max(w(Class::IntMul) / IMAD_RATE)
                / per_s,
        ),
        ("integer pipe", int_slots / (INT_RATE * per_s)),
        ("conversions", w(Class::Convert) / (CONVERT_RATE * per_s)),
        (
            "load/store issue",
            (w(Class::Load) + w(Class::Store)) / (LSU_RATE * per_s),
        ),
        ("L1 sectors", c.l1_sectors as f64 / (L1_SECTORS * per_s)),
    ];
    let (bound, time) =
        limits
            .iter()
            .copied()
            .fold(("DRAM", 0.0), |best, l| if l.1 > best.1 { l } else { best });
    Prediction {
        gpu: g.name,
        elements_per_s: c.elements as f64 / time,
        ratio_to_copy: (c.ideal_bytes as f64 / g.copy_bytes_per_s) / time,
        bound,
    }
}

/// Registers per thread of each kernel for `sm_90`, from ptxas's report.
pub fn registers(ptxas_log: &str, sm: &str) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    let mut current: Option<String> = None;
    for line in ptxas_log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or_default();
            current = line
                .contains(&format!("for '{sm}'"))
                .then(|| name.to_string());
        } else if let (Some(name), Some(rest)) = (&current, line.split("Used ").nth(1)) {
            if let Some(n) = rest
                .split(" registers")
                .next()
                .and_then(|n| n.trim().parse().ok())
            {
                out.insert(name.clone(), n);
            }
        }
    }
    out
}

/// Resident warps per SM (of 64) for `regs` registers a thread and blocks of
/// `threads`: registers are allocated per warp in units of 256.
/// 0 for a block the device cannot run (no threads, more than 1024, more
/// than 255 registers a thread).
pub fn occupancy(regs: u32, threads: u32) -> f64 {
    if threads == 0 || threads > 1024 || regs > 255 {
        return 0.0;
    }
    let warps_per_block = threads.div_ceil(32);
    let per_warp = (regs.max(1) * 32).div_ceil(256) * 256;
    let blocks = (65536 / (per_warp * warps_per_block))
        .min(32)
        .min(64 / warps_per_block);
    (blocks * warps_per_block) as f64 / 64.0
}

/// One row of the model: a type, an output, its counts and predictions.
#[derive(Clone, Debug)]
pub struct Row {
    /// The type decoded.
    pub ty: GgmlType,
    /// The output type.
    pub out: OutType,
    /// The kernel's symbol.
    pub kernel: String,
    /// Output elements each thread writes.
    pub elements_per_thread: u32,
    /// What the sample launch measured.
    pub counts: Counts,
    /// Registers per thread, where ptxas said.
    pub registers: Option<u32>,
    /// One prediction per GPU of the model.
    pub predictions: Vec<Prediction>,
}

/// The model for every type and output, from the PTX of `arch`.
pub fn rows(module: &Module, ptxas_log: &str) -> Result<Vec<Row>> {
    let regs = registers(ptxas_log, "sm_90");
    let mut rows = Vec::new();
    for ty in GgmlType::dequantizable() {
        for out in OutType::ALL {
            let counts = measure(module, ty, out)?;
            let info = KernelInfo::of(ty).expect("dequantizable");
            let kernel = info.symbol(out);
            rows.push(Row {
                ty,
                out,
                elements_per_thread: info.qk / info.parts,
                registers: regs.get(&kernel).copied(),
                kernel,
                predictions: GPUS.iter().map(|g| predict(&counts, g)).collect(),
                counts,
            });
        }
    }
    Ok(rows)
}
