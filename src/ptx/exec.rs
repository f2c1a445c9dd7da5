//! Runs a launch of a decoded kernel: every thread of the grid in turn, each
//! over a register file of 64-bit slots, one `match` per instruction.
//!
//! Arithmetic is the PTX ISA's: integer operations wrap at their type's
//! width, shifts past the width give 0 (or the sign), `bfe`/`bfi`/`prmt` as
//! the ISA's pseudocode says; f32 `add`/`sub`/`mul` round to nearest even with
//! subnormals kept, and a NaN result is the canonical NaN `0x7fffffff`, as a
//! GPU's single-precision arithmetic returns it (x86 would propagate an
//! input's payload); conversions round to nearest even.

use super::memory::{Fault, Memory};
use super::parse::{Cmp, Inst, Int, Kernel, Op, Slot, Ty, NO_GUARD, SPECIALS};

/// The canonical NaN of a GPU's single-precision arithmetic.
pub(crate) const CANONICAL_NAN: u32 = 0x7fff_ffff;

/// Backward branches one thread may take before the launch is stopped as
/// hung (a grid-stride loop takes one per iteration), and all the threads of
/// a launch together.
const MAX_LOOPS: u64 = 1 << 24;
const MAX_LAUNCH_LOOPS: u64 = 1 << 32;

/// Grid and block shape and the parameters of one launch.
#[derive(Clone, Copy, Debug)]
pub struct LaunchConfig<'a> {
    /// Blocks in the grid, x, y, z.
    pub grid: [u32; 3],
    /// Threads in a block, x, y, z.
    pub block: [u32; 3],
    /// One value a parameter (addresses and counts), each written with the
    /// parameter's size.
    pub params: &'a [u64],
}

/// What the performance model records while a thread runs.
pub(crate) trait Probe {
    /// A thread begins: the `index`-th of its block (x fastest), so that
    /// threads `32k..32k+32` of a block are its warp k.
    fn thread(&mut self, _index: u32) {}
    /// Instruction `pc` runs (its guard was true, or it has none). For
    /// global loads and stores, `access` is (address, bytes).
    fn step(&mut self, _pc: usize, _access: Option<(u64, u64)>) {}
    /// Instruction `pc` is issued with its guard false: it does nothing, but
    /// a GPU issues it all the same.
    fn skipped(&mut self, _pc: usize) {}
}

/// No recording: correctness runs.
pub(crate) struct NoProbe;
impl Probe for NoProbe {}

#[inline(always)]
fn mask(bits: u8) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// `v` cut to `t`'s width and extended by its signedness to 64 bits.
#[inline(always)]
fn ext(v: u64, t: Int) -> u64 {
    if t.bits >= 64 {
        v
    } else if t.signed {
        let s = 64 - t.bits as u32;
        ((v << s) as i64 >> s) as u64
    } else {
        v & mask(t.bits)
    }
}

#[inline(always)]
fn f32_of(v: u64) -> f32 {
    f32::from_bits(v as u32)
}

/// An f32 result as a GPU writes it: NaN canonical.
#[inline(always)]
fn f32_bits(x: f32) -> u64 {
    if x.is_nan() {
        CANONICAL_NAN as u64
    } else {
        x.to_bits() as u64
    }
}

fn bfe(a: u64, pos: u64, len: u64, t: Int) -> u64 {
    let msb = t.bits as u64 - 1;
    let (pos, len) = (pos & 0xff, len & 0xff);
    let bit = |i: u64| a >> i & 1;
    let sbit = if !t.signed || len == 0 {
        0
    } else {
        bit((pos + len - 1).min(msb))
    };
    let mut d = 0;
    for i in 0..=msb {
        let b = if i < len && pos + i <= msb {
            bit(pos + i)
        } else {
            sbit
        };
        d |= b << i;
    }
    d
}

fn bfi(a: u64, b: u64, pos: u64, len: u64, bits: u8) -> u64 {
    let msb = bits as u64 - 1;
    let (pos, len) = (pos & 0xff, len & 0xff);
    let mut f = b;
    let mut i = 0;
    while i < len && pos + i <= msb {
        f = f & !(1 << (pos + i)) | (a >> i & 1) << (pos + i);
        i += 1;
    }
    f
}

fn prmt(a: u64, b: u64, c: u64) -> u64 {
    let tmp = (b & 0xffff_ffff) << 32 | (a & 0xffff_ffff);
    let mut d = 0;
    for i in 0..4 {
        let ctl = c >> (4 * i) & 0xf;
        let byte = tmp >> (8 * (ctl & 7)) & 0xff;
        let byte = if ctl & 8 != 0 {
            if byte & 0x80 != 0 {
                0xff
            } else {
                0
            }
        } else {
            byte
        };
        d |= byte << (8 * i);
    }
    d
}

fn compare(cmp: Cmp, ty: Ty, a: u64, b: u64) -> bool {
    match ty {
        Ty::Int(t) => {
            let (a, b) = (ext(a, t), ext(b, t));
            let ord = if t.signed {
                (a as i64).cmp(&(b as i64))
            } else {
                a.cmp(&b)
            };
            match cmp {
                Cmp::Eq => ord.is_eq(),
                Cmp::Ne => ord.is_ne(),
                Cmp::Lt => ord.is_lt(),
                Cmp::Le => ord.is_le(),
                Cmp::Gt => ord.is_gt(),
                Cmp::Ge => ord.is_ge(),
                _ => unreachable!("checked at load"),
            }
        }
        Ty::F32 => {
            let (a, b) = (f32_of(a), f32_of(b));
            let nan = a.is_nan() || b.is_nan();
            match cmp {
                Cmp::Eq => a == b,
                Cmp::Ne => !nan && a != b,
                Cmp::Lt => a < b,
                Cmp::Le => a <= b,
                Cmp::Gt => a > b,
                Cmp::Ge => a >= b,
                Cmp::Equ => nan || a == b,
                Cmp::Neu => nan || a != b,
                Cmp::Ltu => nan || a < b,
                Cmp::Leu => nan || a <= b,
                Cmp::Gtu => nan || a > b,
                Cmp::Geu => nan || a >= b,
                Cmp::Num => !nan,
                Cmp::Nan => nan,
            }
        }
        Ty::F16 | Ty::Pred => unreachable!("checked at load"),
    }
}

fn convert(d: Ty, a: Ty, v: u64) -> u64 {
    match (d, a) {
        (Ty::Int(d), Ty::Int(a)) => ext(ext(v, a), d),
        (Ty::F32, Ty::Int(a)) => {
            let v = ext(v, a);
            let x = if a.signed { v as i64 as f32 } else { v as f32 };
            x.to_bits() as u64
        }
        (Ty::F32, Ty::F16) => {
            // exact; a NaN gives the canonical NaN, as the GPU's f32
            // arithmetic does (the ISA promises only a NaN)
            let x = half::f16::from_bits(v as u16);
            if x.is_nan() {
                CANONICAL_NAN as u64
            } else {
                x.to_f32().to_bits() as u64
            }
        }
        (Ty::F16, Ty::F32) => {
            let x = f32_of(v);
            if x.is_nan() {
                0x7fff
            } else {
                half::f16::from_f32(x).to_bits() as u64
            }
        }
        _ => unreachable!("checked at load"),
    }
}

/// f32 to bf16 bits, rounded to nearest even; a NaN gives the canonical
/// `0x7fff` (the ISA promises only a NaN).
fn to_bf16(v: u64) -> u64 {
    let u = v as u32;
    if f32::from_bits(u).is_nan() {
        0x7fff
    } else {
        (u.wrapping_add(0x7fff + (u >> 16 & 1)) >> 16) as u64
    }
}

/// f32 to f16 bits, rounded to nearest even; a NaN gives `0x7fff`.
fn to_f16(v: u64) -> u64 {
    convert(Ty::F16, Ty::F32, v)
}

/// The writer of slots every thread may read: specials and constants.
const ALWAYS: u64 = u64::MAX;

/// Why a launch stopped: the rule, the thread and the instruction.
pub(crate) struct Stop {
    pub what: String,
    pub block: [u32; 3],
    pub thread: [u32; 3],
    pub pc: usize,
}

/// Checks a launch's shape and parameters against the kernel and the
/// device's limits (those of every GPU since sm_30).
pub(crate) fn check_config(k: &Kernel, c: &LaunchConfig) -> Result<(), String> {
    let threads = c.block.iter().map(|&d| d as u64).product::<u64>();
    if c.block.contains(&0) || c.grid.contains(&0) {
        return Err(format!(
            "{}: a launch dimension is 0 (CUDA_ERROR_INVALID_VALUE)",
            k.name
        ));
    }
    if threads > 1024 || c.block[2] > 64 || threads > k.max_threads as u64 {
        return Err(format!(
            "{}: {threads} threads a block, more than the kernel's {} or the device's 1024 (CUDA_ERROR_INVALID_VALUE)",
            k.name, k.max_threads
        ));
    }
    if let Some(req) = k.required_block.filter(|&r| r != c.block) {
        return Err(format!(
            "{}: a block of {:?} threads, but the kernel requires {req:?} (.reqntid) (CUDA_ERROR_INVALID_VALUE)",
            k.name, c.block
        ));
    }
    if c.grid[0] > i32::MAX as u32 || c.grid[1] > 65535 || c.grid[2] > 65535 {
        return Err(format!(
            "{}: grid {:?} past the device's limits (CUDA_ERROR_INVALID_VALUE)",
            k.name, c.grid
        ));
    }
    let total = c
        .grid
        .iter()
        .try_fold(threads, |acc, &d| acc.checked_mul(d as u64))
        .unwrap_or(u64::MAX);
    if total >= u32::MAX as u64 {
        return Err(format!(
            "{}: {total} threads are more than the interpreter runs in one launch",
            k.name
        ));
    }
    if c.params.len() != k.params.len() {
        return Err(format!(
            "{}: {} parameters given, the kernel takes {} (CUDA_ERROR_INVALID_VALUE)",
            k.name,
            c.params.len(),
            k.params.len()
        ));
    }
    for (i, (&v, &size)) in c.params.iter().zip(&k.params).enumerate() {
        if size < 8 && v >> (8 * size) != 0 {
            return Err(format!(
                "{}: parameter {i} ({v:#x}) does not fit its {size} bytes",
                k.name
            ));
        }
    }
    Ok(())
}

/// Runs every thread of the launch in turn (block by block, x fastest).
pub(crate) fn run<P: Probe>(
    k: &Kernel,
    mem: &mut Memory,
    c: &LaunchConfig,
    probe: &mut P,
) -> Result<(), Stop> {
    mem.begin_launch();
    let mut regs = vec![0u64; k.slots];
    // Which thread last wrote each slot (its launch index + 1; 0 for none):
    // a thread may read only slots it wrote, the specials and the constants
    // (ALWAYS), so a value can never leak from one thread into the next.
    let mut writer = vec![0u64; k.slots];
    writer[..SPECIALS].fill(ALWAYS);
    for &(s, v) in &k.constants {
        regs[s as usize] = v;
        writer[s as usize] = ALWAYS;
    }
    regs[3..6].copy_from_slice(&c.block.map(u64::from));
    regs[9..12].copy_from_slice(&c.grid.map(u64::from));
    let per_block = c.block.iter().product::<u32>();
    let mut tid = 0u32;
    let mut launch_loops = 0u64;
    for bz in 0..c.grid[2] {
        for by in 0..c.grid[1] {
            for bx in 0..c.grid[0] {
                regs[6..9].copy_from_slice(&[bx, by, bz].map(u64::from));
                for tz in 0..c.block[2] {
                    for ty in 0..c.block[1] {
                        for tx in 0..c.block[0] {
                            regs[0..3].copy_from_slice(&[tx, ty, tz].map(u64::from));
                            probe.thread((tz * c.block[1] + ty) * c.block[0] + tx);
                            let r = thread(
                                k,
                                (&mut regs, &mut writer),
                                mem,
                                c.params,
                                tid,
                                &mut launch_loops,
                                probe,
                            );
                            r.map_err(|(what, pc)| Stop {
                                what,
                                block: [bx, by, bz],
                                thread: [tx, ty, tz],
                                pc,
                            })?;
                            tid += 1;
                        }
                    }
                }
                debug_assert_eq!(tid % per_block, 0);
            }
        }
    }
    Ok(())
}

/// One thread, to its `ret`: the error and the instruction where it stopped.
#[inline(never)]
fn thread<P: Probe>(
    k: &Kernel,
    (regs, writer): (&mut [u64], &mut [u64]),
    mem: &mut Memory,
    params: &[u64],
    tid: u32,
    launch_loops: &mut u64,
    probe: &mut P,
) -> Result<(), (String, usize)> {
    let code: &[Inst] = &k.code;
    let me = tid as u64 + 1;
    let mut pc = 0usize;
    let mut loops = 0u64;
    loop {
        let i = &code[pc];
        let here = pc;
        pc += 1;
        // Unused operand slots are 0 (%tid.x), which is always readable.
        let unwritten = |s: Slot| writer[s as usize] != me && writer[s as usize] != ALWAYS;
        if i.guard != NO_GUARD && unwritten(i.guard) || i.a.iter().any(|&s| unwritten(s)) {
            return Err((
                "reads a register this thread never wrote (its value would be undefined on a GPU)"
                    .to_string(),
                here,
            ));
        }
        if i.guard != NO_GUARD && (regs[i.guard as usize] & 1 != 0) == i.guard_neg {
            probe.skipped(here);
            continue;
        }
        let a = |n: usize| regs[i.a[n] as usize];
        let mut access = None;
        let v: u64 = match i.op {
            Op::Mov => a(0),
            Op::Add(t) => ext(a(0).wrapping_add(a(1)), t),
            Op::Sub(t) => ext(a(0).wrapping_sub(a(1)), t),
            Op::MulLo(t) => ext(ext(a(0), t).wrapping_mul(ext(a(1), t)), t),
            Op::MulWide(t) => {
                let wide = Int {
                    bits: t.bits * 2,
                    signed: t.signed,
                };
                ext(ext(a(0), t).wrapping_mul(ext(a(1), t)), wide)
            }
            Op::MadLo(t) => ext(
                ext(a(0), t).wrapping_mul(ext(a(1), t)).wrapping_add(a(2)),
                t,
            ),
            Op::And(t) => ext(a(0) & a(1), t),
            Op::Or(t) => ext(a(0) | a(1), t),
            Op::Xor(t) => ext(a(0) ^ a(1), t),
            Op::Not(t) => ext(!a(0), t),
            Op::Shl(t) => {
                let n = a(1) as u32 as u64;
                if n >= t.bits as u64 {
                    0
                } else {
                    ext(a(0) << n, t)
                }
            }
            Op::Shr(t) => {
                let n = (a(1) as u32 as u64).min(t.bits as u64);
                let x = ext(a(0), t);
                if t.signed {
                    ext(((x as i64) >> n.min(63)) as u64, t)
                } else if n >= 64 {
                    0
                } else {
                    x >> n
                }
            }
            Op::Bfe(t) => ext(
                bfe(ext(a(0), t), a(1) as u32 as u64, a(2) as u32 as u64, t),
                t,
            ),
            Op::Bfi(t) => ext(
                bfi(
                    a(0),
                    ext(a(1), t),
                    a(2) as u32 as u64,
                    a(3) as u32 as u64,
                    t.bits,
                ),
                t,
            ),
            Op::Prmt => prmt(a(0), a(1), a(2)),
            Op::FAdd => f32_bits(f32_of(a(0)) + f32_of(a(1))),
            Op::FSub => f32_bits(f32_of(a(0)) - f32_of(a(1))),
            Op::FMul => f32_bits(f32_of(a(0)) * f32_of(a(1))),
            // The ISA leaves a NaN input's result an unspecified NaN.
            Op::FNeg => f32_bits(-f32_of(a(0))),
            Op::FAbs => f32_bits(f32_of(a(0)).abs()),
            Op::Cvt { d, a: from } => convert(d, from, a(0)),
            Op::CvtPair { bf16 } => {
                let conv = if bf16 { to_bf16 } else { to_f16 };
                conv(a(0)) << 16 | conv(a(1))
            }
            Op::Setp { cmp, ty } => compare(cmp, ty, a(0), a(1)) as u64,
            Op::Selp(t) => {
                let x = if a(2) & 1 != 0 { a(0) } else { a(1) };
                match t {
                    Ty::Int(t) => ext(x, t),
                    _ => x,
                }
            }
            Op::Unpack { n, bits } => {
                let x = a(0);
                for j in 0..n as usize {
                    regs[i.d[j] as usize] = (x >> (bits as usize * j)) & mask(bits) & i.dmask[j];
                    writer[i.d[j] as usize] = me;
                }
                probe.step(here, None);
                continue;
            }
            Op::Pack { n, bits } => {
                let mut x = 0;
                for j in 0..n as usize {
                    x |= (a(j) & mask(bits)) << (bits as usize * j);
                }
                x
            }
            Op::LdParam { .. } => params[i.imm as usize],
            Op::LdGlobal { bytes, n, signed } => {
                let addr = a(0).wrapping_add(i.imm as u64);
                let len = bytes as u64 * n as u64;
                let raw = mem
                    .load(addr, len, tid)
                    .map_err(|f| (f.to_string(), here))?;
                let t = Int {
                    bits: bytes * 8,
                    signed,
                };
                for j in 0..n as usize {
                    let x = (raw >> (bytes as usize * 8 * j)) as u64;
                    regs[i.d[j] as usize] = ext(x, t) & i.dmask[j];
                    writer[i.d[j] as usize] = me;
                }
                probe.step(here, Some((addr, len)));
                continue;
            }
            Op::StGlobal { bytes, n } => {
                let addr = a(0).wrapping_add(i.imm as u64);
                let len = bytes as u64 * n as u64;
                let mut raw = 0u128;
                for j in 0..n as usize {
                    raw |= ((a(1 + j) & mask(bytes * 8)) as u128) << (bytes as usize * 8 * j);
                }
                mem.store(addr, len, raw, tid)
                    .map_err(|f: Fault| (f.to_string(), here))?;
                access = Some((addr, len));
                probe.step(here, access);
                continue;
            }
            Op::Bra => {
                let target = i.imm as usize;
                if target <= here {
                    loops += 1;
                    *launch_loops += 1;
                    if loops > MAX_LOOPS || *launch_loops > MAX_LAUNCH_LOOPS {
                        return Err((
                            format!(
                                "more than {MAX_LOOPS} loop iterations in a thread or \
                                 {MAX_LAUNCH_LOOPS} in the launch: hung"
                            ),
                            here,
                        ));
                    }
                }
                pc = target;
                probe.step(here, None);
                continue;
            }
            Op::Ret => {
                probe.step(here, None);
                return Ok(());
            }
        };
        regs[i.d[0] as usize] = v & i.dmask[0];
        writer[i.d[0] as usize] = me;
        probe.step(here, access);
    }
}
