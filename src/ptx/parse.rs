//! PTX text to [`Module`]: kernels whose instructions are decoded once, at
//! load, into [`Inst`]s over numbered register slots, so that running a
//! thread is one `match` per instruction and no text is looked at again.
//!
//! Only what nvcc emits for `cuda/` is accepted, each form to the PTX ISA's
//! definition; anything else (another instruction, a modifier this
//! interpreter does not implement, shared memory, barriers, warp-level or
//! atomic operations, calls) is an error at load naming the form, the kernel
//! and the line, so that a kernel cannot leave the interpreter's coverage
//! silently.

use std::collections::HashMap;

use super::memory;

/// Where the module's `.global` tables start in the interpreter's address
/// space; launch buffers are placed elsewhere (see `memory.rs`).
pub(crate) const TABLE_BASE: u64 = 0x0000_7e00_0000_0000;

/// Register slots every kernel has: `%tid`, `%ntid`, `%ctaid`, `%nctaid`,
/// x y z each, in that order.
pub(crate) const SPECIALS: usize = 12;
const SPECIAL_NAMES: [&str; SPECIALS] = [
    "%tid.x",
    "%tid.y",
    "%tid.z",
    "%ntid.x",
    "%ntid.y",
    "%ntid.z",
    "%ctaid.x",
    "%ctaid.y",
    "%ctaid.z",
    "%nctaid.x",
    "%nctaid.y",
    "%nctaid.z",
];

/// A slot of the register file: a register, a special register or a
/// constant (immediates and table addresses are constants set at thread
/// start, so that every operand is a slot).
pub(crate) type Slot = u16;

/// "No guard predicate".
pub(crate) const NO_GUARD: Slot = Slot::MAX;

/// A module: its kernels and `.global` tables.
#[derive(Debug)]
pub struct Module {
    /// The `.target` line (`sm_90`, `sm_120`, ...).
    pub target: String,
    pub(crate) kernels: Vec<Kernel>,
    pub(crate) tables: Vec<Table>,
}

/// A `.global` table with its initializer, at a fixed address.
#[derive(Debug)]
pub(crate) struct Table {
    pub name: String,
    pub base: u64,
    pub bytes: Vec<u8>,
}

/// One `.entry`, decoded.
#[derive(Debug)]
pub(crate) struct Kernel {
    pub name: String,
    /// Byte size of each parameter.
    pub params: Vec<u32>,
    /// Slots in all: specials, registers, constants.
    pub slots: usize,
    /// Constant slots and their values.
    pub constants: Vec<(Slot, u64)>,
    pub code: Vec<Inst>,
    /// The source line of each instruction (for errors) and its number.
    pub text: Vec<(u32, String)>,
    /// `.maxntid`/`.reqntid`: the most threads a block may have.
    pub max_threads: u32,
    /// `.reqntid`: the block shape every launch must have.
    pub required_block: Option<[u32; 3]>,
}

/// An integer type of an instruction: its width and signedness (`.b` types
/// are unsigned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Int {
    pub bits: u8,
    pub signed: bool,
}

/// A type of `cvt`, `setp`, `selp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Int(Int),
    F16,
    F32,
    Pred,
}

/// Comparisons of `setp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// Unordered float comparisons: true when either operand is NaN.
    Equ,
    Neu,
    Ltu,
    Leu,
    Gtu,
    Geu,
    Num,
    Nan,
}

/// What an instruction does. Integer operations carry their type; operands
/// are read truncated to it, and results are written extended by its
/// signedness and cut to the destination register's width (the ISA's rules
/// for operands wider than the instruction type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `mov`, `cvta.to.global`: d = a.
    Mov,
    /// `mov.bN {d0, d1, ..}, a`: a split into `n` parts of N/n bits.
    Unpack {
        n: u8,
        bits: u8,
    },
    /// `mov.bN d, {a0, a1, ..}`: parts joined, a0 lowest.
    Pack {
        n: u8,
        bits: u8,
    },
    Add(Int),
    Sub(Int),
    MulLo(Int),
    /// `mul.wide`: the product of two N-bit values as 2N bits.
    MulWide(Int),
    /// `mad.lo`: low bits of a * b + c.
    MadLo(Int),
    And(Int),
    Or(Int),
    Xor(Int),
    Not(Int),
    Shl(Int),
    Shr(Int),
    Bfe(Int),
    Bfi(Int),
    Prmt,
    FAdd,
    FSub,
    FMul,
    FNeg,
    FAbs,
    Cvt {
        d: Ty,
        a: Ty,
    },
    /// `cvt.rn.{f16x2,bf16x2}.f32 d, a, b`: a rounded into the high half, b
    /// into the low half.
    CvtPair {
        bf16: bool,
    },
    Setp {
        cmp: Cmp,
        ty: Ty,
    },
    Selp(Ty),
    /// `ld.param`: parameter `imm`, `bytes` wide.
    LdParam {
        bytes: u8,
    },
    /// `ld.global` (`.nc` or not): `n` elements of `bytes`, extended by `signed`.
    LdGlobal {
        bytes: u8,
        n: u8,
        signed: bool,
    },
    /// `st.global`: `n` elements of `bytes`.
    StGlobal {
        bytes: u8,
        n: u8,
    },
    /// `bra` to instruction `imm`.
    Bra,
    Ret,
}

/// A decoded instruction: its operation, guard and operand slots.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Inst {
    pub op: Op,
    /// The guarding predicate's slot, or [`NO_GUARD`].
    pub guard: Slot,
    /// `@!p`: run when the predicate is false.
    pub guard_neg: bool,
    /// Destinations (registers written).
    pub d: [Slot; 4],
    /// Sources. For loads and stores, a[0] is the address register (or a
    /// constant) and stores' values follow from a[1].
    pub a: [Slot; 5],
    /// The width mask of each destination register.
    pub dmask: [u64; 4],
    /// Address offset of loads and stores, parameter index, branch target.
    pub imm: i64,
}

/// A load error: the form or operand and where.
fn err(kernel: &str, line: u32, what: impl std::fmt::Display) -> String {
    format!("PTX kernel {kernel}, line {line}: {what}")
}

/// A register name's width in bits (1 for predicates).
fn reg_bits(ty: &str) -> Option<u8> {
    Some(match ty {
        "pred" => 1,
        "b16" | "u16" | "s16" | "f16" => 16,
        "b32" | "u32" | "s32" | "f32" => 32,
        "b64" | "u64" | "s64" | "f64" => 64,
        _ => return None,
    })
}

fn mask(bits: u8) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// An instruction type suffix: `u32`, `s8`, `b16`, `f32`, `pred`, ...
fn parse_ty(s: &str) -> Option<Ty> {
    if !s.is_char_boundary(1) {
        return None;
    }
    let (kind, bits) = s.split_at(1);
    let bits: u8 = match bits.parse() {
        Ok(b @ (8 | 16 | 32 | 64)) => b,
        _ => return (s == "pred").then_some(Ty::Pred),
    };
    match kind {
        "u" | "b" => Some(Ty::Int(Int {
            bits,
            signed: false,
        })),
        "s" => Some(Ty::Int(Int { bits, signed: true })),
        "f" if bits == 32 => Some(Ty::F32),
        "f" if bits == 16 => Some(Ty::F16),
        _ => None,
    }
}

fn parse_int_ty(s: &str) -> Option<Int> {
    match parse_ty(s)? {
        Ty::Int(i) => Some(i),
        _ => None,
    }
}

/// An immediate: decimal, `0x` hex, or `0f` + 8 hex digits (f32 bits).
fn parse_imm(s: &str) -> Option<u64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let v = if let Some(h) = body.strip_prefix("0f").or_else(|| body.strip_prefix("0F")) {
        if neg || h.len() != 8 {
            return None;
        }
        u32::from_str_radix(h, 16).ok()? as u64
    } else if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        u64::from_str_radix(h.strip_suffix('U').unwrap_or(h), 16).ok()?
    } else if body.chars().all(|c| c.is_ascii_digit())
        && !body.is_empty()
        && (body == "0" || !body.starts_with('0'))
    {
        // (a leading 0 is octal in PTX: nvcc does not write it, so it is refused)
        body.parse::<u64>().ok()?
    } else {
        return None;
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Splits `s` at top-level commas (outside `{}` and `[]`).
fn split_operands(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !s[start..].trim().is_empty() {
        out.push(s[start..].trim());
    }
    out
}

/// The state of one kernel being decoded.
struct Builder<'m> {
    kernel: String,
    line: u32,
    /// Register scopes (`{ .reg .b16 tmp; ... }` inside a body), innermost last:
    /// name to (slot, width).
    scopes: Vec<HashMap<String, (Slot, u8)>>,
    slots: usize,
    constants: HashMap<u64, Slot>,
    params: Vec<(String, u32)>,
    tables: &'m HashMap<String, u64>,
    labels: HashMap<String, usize>,
    /// Branches to patch: (instruction, label, line).
    branches: Vec<(usize, String, u32)>,
    code: Vec<Inst>,
    text: Vec<(u32, String)>,
}

impl Builder<'_> {
    fn e(&self, what: impl std::fmt::Display) -> String {
        err(&self.kernel, self.line, what)
    }

    fn new_slot(&mut self) -> Result<Slot, String> {
        let s = Slot::try_from(self.slots)
            .ok()
            .filter(|&s| s != NO_GUARD)
            .ok_or_else(|| self.e("more registers than the interpreter holds"))?;
        self.slots += 1;
        Ok(s)
    }

    /// `.reg .b32 %r<189>;` or `.reg .b16 tmp;`
    fn declare(&mut self, decl: &str) -> Result<(), String> {
        let mut parts = decl.split_whitespace();
        let (Some(".reg"), Some(ty)) = (parts.next(), parts.next()) else {
            return Err(self.e(format!("unsupported declaration `{decl}`")));
        };
        let bits = ty
            .strip_prefix('.')
            .and_then(reg_bits)
            .ok_or_else(|| self.e(format!("unsupported register type `{ty}`")))?;
        let joined: String = parts.collect();
        let names = joined.split(',').map(str::trim).filter(|n| !n.is_empty());
        for name in names {
            if let Some((stem, count)) = name.split_once('<') {
                let n: usize = count
                    .trim_end_matches('>')
                    .parse()
                    .map_err(|_| self.e(format!("bad register range `{name}`")))?;
                for i in 0..n {
                    let slot = self.new_slot()?;
                    self.scopes
                        .last_mut()
                        .unwrap()
                        .insert(format!("{stem}{i}"), (slot, bits));
                }
            } else {
                let slot = self.new_slot()?;
                self.scopes
                    .last_mut()
                    .unwrap()
                    .insert(name.to_string(), (slot, bits));
            }
        }
        Ok(())
    }

    fn constant(&mut self, v: u64) -> Result<Slot, String> {
        if let Some(&s) = self.constants.get(&v) {
            return Ok(s);
        }
        let s = self.new_slot()?;
        self.constants.insert(v, s);
        Ok(s)
    }

    /// A register (with its width) by name, innermost scope first.
    fn reg(&self, name: &str) -> Result<(Slot, u8), String> {
        if let Some(i) = SPECIAL_NAMES.iter().position(|&s| s == name) {
            return Ok((i as Slot, 32));
        }
        self.scopes
            .iter()
            .rev()
            .find_map(|s| s.get(name).copied())
            .ok_or_else(|| {
                if name.starts_with('%') {
                    self.e(format!("unknown or unsupported register `{name}`"))
                } else {
                    self.e(format!("unsupported operand `{name}`"))
                }
            })
    }

    /// A source operand: a register, an immediate or a table's address.
    fn src(&mut self, s: &str) -> Result<Slot, String> {
        if s.starts_with('%')
            || s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && !self.tables.contains_key(s)
        {
            return Ok(self.reg(s)?.0);
        }
        if let Some(&addr) = self.tables.get(s) {
            return self.constant(addr);
        }
        let v = parse_imm(s).ok_or_else(|| self.e(format!("unsupported operand `{s}`")))?;
        self.constant(v)
    }

    fn dst(&self, s: &str) -> Result<(Slot, u64), String> {
        let (slot, bits) = self.reg(s)?;
        if (slot as usize) < SPECIALS {
            return Err(self.e(format!("`{s}` is read-only")));
        }
        Ok((slot, mask(bits)))
    }

    /// `{%a, %b}` as its parts.
    fn vector<'s>(&self, s: &'s str) -> Result<Vec<&'s str>, String> {
        let inner = s
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| self.e(format!("expected a vector operand, found `{s}`")))?;
        Ok(inner.split(',').map(str::trim).collect())
    }

    /// `[%rd4+16]`, `[%rd4+-8]`, `[NAME]`, `[NAME+4]`: (base slot, offset).
    fn address(&mut self, s: &str) -> Result<(Slot, i64), String> {
        let inner = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(|| self.e(format!("expected an address, found `{s}`")))?
            .trim();
        let (base, off) = match inner.split_once('+') {
            Some((b, o)) => {
                let o = o.trim();
                let v = parse_imm(o).ok_or_else(|| self.e(format!("bad address offset `{o}`")))?;
                (b.trim(), v as i64)
            }
            None => (inner, 0),
        };
        Ok((self.src(base)?, off))
    }

    fn push(&mut self, inst: Inst, text: &str) {
        self.code.push(inst);
        self.text.push((self.line, text.to_string()));
    }

    /// Decodes one instruction statement (without its `;`).
    fn instruction(&mut self, stmt: &str) -> Result<(), String> {
        let mut rest = stmt.trim();
        let (mut guard, mut guard_neg) = (NO_GUARD, false);
        if let Some(g) = rest.strip_prefix('@') {
            let (p, r) = g
                .split_once(char::is_whitespace)
                .ok_or_else(|| self.e("guard without instruction"))?;
            let (neg, p) = match p.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, p),
            };
            let (slot, bits) = self.reg(p)?;
            if bits != 1 {
                return Err(self.e(format!("guard `{p}` is not a predicate")));
            }
            guard = slot;
            guard_neg = neg;
            rest = r.trim();
        }
        let (opcode, operands) = match rest.split_once(char::is_whitespace) {
            Some((o, r)) => (o, r.trim()),
            None => (rest, ""),
        };
        let ops = split_operands(operands);
        let mut parts = opcode.split('.');
        let base = parts.next().unwrap_or_default();
        let mods: Vec<&str> = parts.collect();
        let mut inst = Inst {
            op: Op::Ret,
            guard,
            guard_neg,
            d: [0; 4],
            a: [0; 5],
            dmask: [0; 4],
            imm: 0,
        };
        let unsupported = |b: &Self| {
            b.e(format!(
                "unsupported instruction form `{opcode}` (in `{stmt}`)"
            ))
        };
        let want = |b: &Self, n: usize| {
            if ops.len() == n {
                Ok(())
            } else {
                Err(b.e(format!("`{opcode}` takes {n} operands (in `{stmt}`)")))
            }
        };
        // d, then sources a[0..]
        macro_rules! dsts {
            ($n:expr) => {{
                want(self, $n)?;
                let (s, m) = self.dst(ops[0])?;
                inst.d[0] = s;
                inst.dmask[0] = m;
                for (i, o) in ops[1..].iter().enumerate() {
                    inst.a[i] = self.src(o)?;
                }
            }};
        }
        let int_ty = |b: &Self, m: &[&str]| -> Result<Int, String> {
            match m {
                [t] => parse_int_ty(t).ok_or_else(|| unsupported(b)),
                _ => Err(unsupported(b)),
            }
        };
        match base {
            "mov" | "cvta" => {
                let ty = match (base, mods.as_slice()) {
                    ("mov", [t]) => *t,
                    ("cvta", ["to", "global", t]) => *t,
                    _ => return Err(unsupported(self)),
                };
                let bits = match parse_ty(ty) {
                    Some(Ty::Int(i)) => i.bits,
                    Some(Ty::F32) => 32,
                    Some(Ty::Pred) => 1,
                    _ => return Err(unsupported(self)),
                };
                want(self, 2)?;
                if ops[0].starts_with('{') {
                    let parts = self.vector(ops[0])?;
                    if base != "mov" || !matches!(parts.len(), 2 | 4) {
                        return Err(unsupported(self));
                    }
                    let n = parts.len() as u8;
                    if bits % n != 0 {
                        return Err(unsupported(self));
                    }
                    for (i, p) in parts.iter().enumerate() {
                        let (s, m) = self.dst(p)?;
                        inst.d[i] = s;
                        inst.dmask[i] = m;
                    }
                    inst.a[0] = self.src(ops[1])?;
                    inst.op = Op::Unpack { n, bits: bits / n };
                } else if ops[1].starts_with('{') {
                    let parts = self.vector(ops[1])?;
                    if base != "mov" || !matches!(parts.len(), 2 | 4) {
                        return Err(unsupported(self));
                    }
                    let n = parts.len() as u8;
                    if bits % n != 0 {
                        return Err(unsupported(self));
                    }
                    let (s, m) = self.dst(ops[0])?;
                    inst.d[0] = s;
                    inst.dmask[0] = m;
                    for (i, p) in parts.iter().enumerate() {
                        inst.a[i] = self.src(p)?;
                    }
                    inst.op = Op::Pack { n, bits: bits / n };
                } else {
                    dsts!(2);
                    inst.dmask[0] &= mask(bits);
                    inst.op = Op::Mov;
                }
            }
            "add" | "sub" | "mul" | "mad" | "neg" | "abs" if mods.last() == Some(&"f32") => {
                let rounding: Vec<&str> = mods[..mods.len() - 1].to_vec();
                // Without `.rn`, ptxas may contract a multiply and an add
                // into an FMA: ggml's values need them apart.
                let op = match (base, rounding.as_slice()) {
                    ("add", ["rn"]) => Op::FAdd,
                    ("sub", ["rn"]) => Op::FSub,
                    ("mul", ["rn"]) => Op::FMul,
                    ("neg", []) => Op::FNeg,
                    ("abs", []) => Op::FAbs,
                    _ => return Err(unsupported(self)),
                };
                dsts!(if matches!(op, Op::FNeg | Op::FAbs) {
                    2
                } else {
                    3
                });
                inst.op = op;
            }
            "add" | "sub" => {
                let t = int_ty(self, &mods)?;
                dsts!(3);
                inst.op = if base == "add" {
                    Op::Add(t)
                } else {
                    Op::Sub(t)
                };
            }
            "mul" | "mad" => {
                let (mode, t) = match mods.as_slice() {
                    [m, t] => (*m, parse_int_ty(t).ok_or_else(|| unsupported(self))?),
                    _ => return Err(unsupported(self)),
                };
                inst.op = match (base, mode) {
                    ("mul", "lo") => Op::MulLo(t),
                    ("mul", "wide") if t.bits <= 32 => Op::MulWide(t),
                    ("mad", "lo") => Op::MadLo(t),
                    _ => return Err(unsupported(self)),
                };
                dsts!(if base == "mad" { 4 } else { 3 });
            }
            "and" | "or" | "xor" | "not" => {
                let t = match mods.as_slice() {
                    ["pred"] => Int {
                        bits: 1,
                        signed: false,
                    },
                    [t] if t.starts_with('b') => {
                        parse_int_ty(t).ok_or_else(|| unsupported(self))?
                    }
                    _ => return Err(unsupported(self)),
                };
                dsts!(if base == "not" { 2 } else { 3 });
                inst.op = match base {
                    "and" => Op::And(t),
                    "or" => Op::Or(t),
                    "xor" => Op::Xor(t),
                    _ => Op::Not(t),
                };
            }
            "shl" | "shr" => {
                let t = int_ty(self, &mods)?;
                if base == "shl" && t.signed || t.bits < 16 {
                    return Err(unsupported(self));
                }
                dsts!(3);
                inst.op = if base == "shl" {
                    Op::Shl(t)
                } else {
                    Op::Shr(t)
                };
            }
            "bfe" | "bfi" => {
                let t = int_ty(self, &mods)?;
                if t.bits < 32 {
                    return Err(unsupported(self));
                }
                dsts!(if base == "bfe" { 4 } else { 5 });
                inst.op = if base == "bfe" {
                    Op::Bfe(t)
                } else {
                    Op::Bfi(t)
                };
            }
            "prmt" => {
                if mods != ["b32"] {
                    return Err(unsupported(self));
                }
                dsts!(4);
                inst.op = Op::Prmt;
            }
            "cvt" if matches!(mods.as_slice(), ["rn", "f16x2" | "bf16x2", "f32"]) => {
                dsts!(3);
                if inst.dmask[0] != u32::MAX as u64 {
                    return Err(
                        self.e(format!("`{opcode}` writes a 32-bit register (in `{stmt}`)"))
                    );
                }
                inst.op = Op::CvtPair {
                    bf16: mods[1] == "bf16x2",
                };
            }
            "cvt" => {
                let (rnd, d, a) = match mods.as_slice() {
                    [d, a] => (None, *d, *a),
                    [r, d, a] => (Some(*r), *d, *a),
                    _ => return Err(unsupported(self)),
                };
                let (d, a) = (
                    parse_ty(d).ok_or_else(|| unsupported(self))?,
                    parse_ty(a).ok_or_else(|| unsupported(self))?,
                );
                let ok = match (d, a, rnd) {
                    (Ty::Int(_), Ty::Int(_), None) => true,
                    // integer to f32, and f32 to f16, round to nearest even;
                    // f16 to f32 is exact and takes no rounding
                    (Ty::F32, Ty::Int(_), Some("rn")) => true,
                    (Ty::F16, Ty::F32, Some("rn")) => true,
                    (Ty::F32, Ty::F16, None) => true,
                    _ => false,
                };
                if !ok {
                    return Err(unsupported(self));
                }
                dsts!(2);
                inst.op = Op::Cvt { d, a };
            }
            "setp" => {
                let (cmp, t) = match mods.as_slice() {
                    [c, t] => (*c, parse_ty(t).ok_or_else(|| unsupported(self))?),
                    _ => return Err(unsupported(self)),
                };
                let float = t == Ty::F32;
                let unsigned_only = matches!(t, Ty::Int(Int { signed: false, .. }));
                let cmp = match cmp {
                    "eq" => Cmp::Eq,
                    "ne" => Cmp::Ne,
                    "lt" => Cmp::Lt,
                    "le" => Cmp::Le,
                    "gt" => Cmp::Gt,
                    "ge" => Cmp::Ge,
                    "lo" if unsigned_only => Cmp::Lt,
                    "ls" if unsigned_only => Cmp::Le,
                    "hi" if unsigned_only => Cmp::Gt,
                    "hs" if unsigned_only => Cmp::Ge,
                    "equ" if float => Cmp::Equ,
                    "neu" if float => Cmp::Neu,
                    "ltu" if float => Cmp::Ltu,
                    "leu" if float => Cmp::Leu,
                    "gtu" if float => Cmp::Gtu,
                    "geu" if float => Cmp::Geu,
                    "num" if float => Cmp::Num,
                    "nan" if float => Cmp::Nan,
                    _ => return Err(unsupported(self)),
                };
                // `.b` types compare only for equality
                let bit_ty = mods[1].starts_with('b');
                if bit_ty && !matches!(cmp, Cmp::Eq | Cmp::Ne) || matches!(t, Ty::F16 | Ty::Pred) {
                    return Err(unsupported(self));
                }
                if ops.first().is_some_and(|d| d.contains('|')) {
                    return Err(unsupported(self));
                }
                dsts!(3);
                if inst.dmask[0] != 1 {
                    return Err(self.e(format!("setp writes `{}`, not a predicate", ops[0])));
                }
                inst.op = Op::Setp { cmp, ty: t };
            }
            "selp" => {
                let t = match mods.as_slice() {
                    [t] => parse_ty(t)
                        .filter(|t| *t != Ty::F16 && *t != Ty::Pred)
                        .ok_or_else(|| unsupported(self))?,
                    _ => return Err(unsupported(self)),
                };
                dsts!(4);
                if !ops[3].starts_with('%') || self.reg(ops[3])?.1 != 1 {
                    return Err(self.e(format!("selp's condition `{}` is not a predicate", ops[3])));
                }
                inst.op = Op::Selp(t);
            }
            "ld" | "st" => return self.memory(base, &mods, &ops, inst, stmt, opcode),
            "bra" => {
                if !(mods.is_empty() || mods == ["uni"]) {
                    return Err(unsupported(self));
                }
                want(self, 1)?;
                inst.op = Op::Bra;
                self.branches
                    .push((self.code.len(), ops[0].to_string(), self.line));
            }
            "ret" | "exit" if mods.is_empty() && ops.is_empty() => inst.op = Op::Ret,
            _ => return Err(unsupported(self)),
        }
        self.push(inst, stmt);
        Ok(())
    }

    fn memory(
        &mut self,
        base: &str,
        mods: &[&str],
        ops: &[&str],
        mut inst: Inst,
        stmt: &str,
        opcode: &str,
    ) -> Result<(), String> {
        let unsupported = || {
            self.e(format!(
                "unsupported instruction form `{opcode}` (in `{stmt}`)"
            ))
        };
        // ld.param.T, ld.global{.nc}{.vN}.T, st.global{.vN}.T
        let (space, rest) = mods.split_first().ok_or_else(unsupported)?;
        let mut rest = rest;
        if base == "ld" && *space == "global" && rest.first() == Some(&"nc") {
            rest = &rest[1..];
        }
        let (n, ty) = match rest {
            [t] => (1u8, *t),
            [v, t] => (
                match *v {
                    "v2" => 2,
                    "v4" => 4,
                    _ => return Err(unsupported()),
                },
                *t,
            ),
            _ => return Err(unsupported()),
        };
        let (bytes, signed) = match parse_ty(ty) {
            Some(Ty::Int(i)) => (i.bits / 8, i.signed),
            Some(Ty::F32) => (4, false),
            _ => return Err(unsupported()),
        };
        if ops.len() != 2 {
            return Err(self.e(format!("`{opcode}` takes 2 operands (in `{stmt}`)")));
        }
        let (value, addr) = if base == "ld" {
            (ops[0], ops[1])
        } else {
            (ops[1], ops[0])
        };
        let values: Vec<&str> = if n > 1 {
            self.vector(value)?
        } else {
            vec![value]
        };
        // the widest access a thread makes is 16 bytes
        if values.len() != n as usize || bytes as u32 * n as u32 > 16 {
            return Err(unsupported());
        }
        match (base, *space) {
            ("ld", "param") if n == 1 => {
                let name = addr
                    .strip_prefix('[')
                    .and_then(|a| a.strip_suffix(']'))
                    .ok_or_else(unsupported)?;
                let index = self
                    .params
                    .iter()
                    .position(|(p, _)| p == name)
                    .ok_or_else(|| self.e(format!("unknown parameter `{name}`")))?;
                if self.params[index].1 != bytes as u32 {
                    return Err(self.e(format!(
                        "`{opcode}` reads {bytes} bytes of an {}-byte parameter",
                        self.params[index].1
                    )));
                }
                let (s, m) = self.dst(values[0])?;
                inst.d[0] = s;
                inst.dmask[0] = m;
                inst.imm = index as i64;
                inst.op = Op::LdParam { bytes };
            }
            ("ld", "global") => {
                for (i, v) in values.iter().enumerate() {
                    let (s, m) = self.dst(v)?;
                    inst.d[i] = s;
                    inst.dmask[i] = m;
                }
                let (a, off) = self.address(addr)?;
                inst.a[0] = a;
                inst.imm = off;
                inst.op = Op::LdGlobal { bytes, n, signed };
            }
            ("st", "global") => {
                let (a, off) = self.address(addr)?;
                inst.a[0] = a;
                inst.imm = off;
                for (i, v) in values.iter().enumerate() {
                    inst.a[1 + i] = self.src(v)?;
                }
                inst.op = Op::StGlobal { bytes, n };
            }
            _ => return Err(unsupported()),
        }
        self.push(inst, stmt);
        Ok(())
    }

    fn finish(
        mut self,
        max_threads: u32,
        required_block: Option<[u32; 3]>,
    ) -> Result<Kernel, String> {
        for (at, label, line) in std::mem::take(&mut self.branches) {
            let target = *self
                .labels
                .get(&label)
                .ok_or_else(|| err(&self.kernel, line, format!("unknown label `{label}`")))?;
            self.code[at].imm = target as i64;
        }
        // a body must not run off its end, nor a branch to a label after
        // its last instruction past it: a final `ret` ends both
        let line = self.line;
        self.push(
            Inst {
                op: Op::Ret,
                guard: NO_GUARD,
                guard_neg: false,
                d: [0; 4],
                a: [0; 5],
                dmask: [0; 4],
                imm: 0,
            },
            "ret (end of body)",
        );
        self.text.last_mut().unwrap().0 = line;
        let mut constants: Vec<(Slot, u64)> =
            self.constants.into_iter().map(|(v, s)| (s, v)).collect();
        constants.sort_unstable();
        Ok(Kernel {
            name: self.kernel,
            params: self.params.into_iter().map(|(_, b)| b).collect(),
            slots: self.slots,
            constants,
            code: self.code,
            text: self.text,
            max_threads,
            required_block,
        })
    }
}

/// `.global .align 8 .b8 NAME[2048] = {8, 8, ...};`
fn parse_table(line: &str, lineno: u32) -> Result<(String, u64, Vec<u8>), String> {
    let e = |what: &str| {
        format!(
            "PTX line {lineno}: {what} in `{}`",
            &line[..line.len().min(80)]
        )
    };
    let (decl, init) = line
        .split_once('=')
        .ok_or_else(|| e("a .global without an initializer"))?;
    let words: Vec<&str> = decl.split_whitespace().collect();
    let [".global", ".align", align, ".b8", name_len] = words.as_slice() else {
        return Err(e(
            "an unsupported .global declaration (only aligned .b8 arrays)",
        ));
    };
    let align: u64 = align.parse().map_err(|_| e("a bad alignment"))?;
    let (name, len) = name_len
        .strip_suffix(']')
        .and_then(|s| s.split_once('['))
        .ok_or_else(|| e("a .global that is not an array"))?;
    let len: usize = len.parse().map_err(|_| e("a bad array length"))?;
    let body = init
        .trim()
        .trim_end_matches(';')
        .trim()
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or_else(|| e("an initializer that is not a list"))?;
    let bytes: Vec<u8> = body
        .split(',')
        .map(|v| v.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .map_err(|_| e("an initializer value that is not a byte"))?;
    if bytes.len() != len {
        return Err(e("an initializer of the wrong length"));
    }
    Ok((name.to_string(), align, bytes))
}

impl Module {
    /// Parses and decodes a module. Errors name the line and the form.
    pub fn parse(text: &str) -> Result<Module, String> {
        let mut target = String::new();
        let mut tables: Vec<Table> = Vec::new();
        let mut table_addrs: HashMap<String, u64> = HashMap::new();
        let mut kernels = Vec::new();
        let lines: Vec<&str> = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect();
        let mut i = 0;
        let mut next_table = TABLE_BASE;
        while i < lines.len() {
            let lineno = i as u32 + 1;
            let line = lines[i].trim();
            i += 1;
            if line.is_empty() {
                continue;
            }
            if let Some(t) = line.strip_prefix(".target") {
                target = t.trim().to_string();
            } else if line.starts_with(".version") || line.starts_with(".address_size") {
            } else if line.starts_with(".global") {
                let (name, align, bytes) = parse_table(line, lineno)?;
                if !align.is_power_of_two() || align > 4096 {
                    return Err(format!(
                        "PTX line {lineno}: table alignment {align} is not a power of two up to 4096"
                    ));
                }
                let base = next_table.next_multiple_of(256);
                // a gap after every table: a read past its end is outside memory
                next_table = base + bytes.len() as u64 + 4096;
                if next_table > memory::BUFFER_BASE {
                    return Err(format!(
                        "PTX line {lineno}: the module's tables are too large"
                    ));
                }
                table_addrs.insert(name.clone(), base);
                tables.push(Table { name, base, bytes });
            } else if let Some(rest) = line
                .strip_prefix(".visible .entry ")
                .or_else(|| line.strip_prefix(".entry "))
            {
                let name = rest.trim_end_matches('(').trim().to_string();
                let (kernel, next) = parse_kernel(&name, &lines, i, &table_addrs)?;
                kernels.push(kernel);
                i = next;
            } else {
                return Err(format!(
                    "PTX line {lineno}: unsupported module-level statement `{line}`"
                ));
            }
        }
        Ok(Module {
            target,
            kernels,
            tables,
        })
    }

    /// The kernel names, in the module's order.
    pub fn kernel_names(&self) -> impl Iterator<Item = &str> {
        self.kernels.iter().map(|k| k.name.as_str())
    }

    pub(crate) fn kernel(&self, name: &str) -> Option<&Kernel> {
        self.kernels.iter().find(|k| k.name == name)
    }
}

/// Parses one `.entry` from its parameter list (line `i`) to its closing
/// brace; returns the kernel and the line after it.
fn parse_kernel(
    name: &str,
    lines: &[&str],
    mut i: usize,
    tables: &HashMap<String, u64>,
) -> Result<(Kernel, usize), String> {
    let mut params = Vec::new();
    // parameters, to `)`
    loop {
        let Some(line) = lines.get(i) else {
            return Err(err(name, i as u32, "unterminated parameter list"));
        };
        let line = line.trim();
        i += 1;
        if line == ")" {
            break;
        }
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.trim_end_matches(',').split_whitespace().collect();
        let (ty, pname) = match words.as_slice() {
            [".param", ty, pname] => (*ty, *pname),
            // NVVM 20: `.param .u64 .ptr .align 1 name`
            [".param", ty, ".ptr", ".align", _, pname] => (*ty, *pname),
            _ => {
                return Err(err(
                    name,
                    i as u32,
                    format!("unsupported parameter `{line}`"),
                ))
            }
        };
        let bytes = match ty {
            ".u64" | ".b64" | ".s64" => 8,
            ".u32" | ".b32" | ".s32" => 4,
            _ => {
                return Err(err(
                    name,
                    i as u32,
                    format!("unsupported parameter type `{ty}`"),
                ))
            }
        };
        params.push((pname.to_string(), bytes));
    }
    // performance directives, to `{`
    let mut max_threads = 1024;
    let mut required_block = None;
    loop {
        let Some(line) = lines.get(i) else {
            return Err(err(name, i as u32, "a kernel without a body"));
        };
        let line = line.trim();
        i += 1;
        if line == "{" {
            break;
        }
        let max = line.strip_prefix(".maxntid");
        let req = line.strip_prefix(".reqntid");
        if let Some(dims) = max.or(req) {
            // one to three sizes; those left out are 1
            let bad = || err(name, i as u32, format!("bad `{line}`"));
            let mut shape = [1u32; 3];
            let sizes: Vec<&str> = dims.split(',').collect();
            if sizes.len() > 3 {
                return Err(bad());
            }
            for (d, text) in shape.iter_mut().zip(sizes) {
                *d = text.trim().parse().map_err(|_| bad())?;
            }
            max_threads = shape.iter().fold(1u32, |acc, &d| acc.saturating_mul(d));
            if req.is_some() {
                required_block = Some(shape);
            }
        } else if !line.is_empty()
            && !line.starts_with(".minnctapersm")
            && !line.starts_with(".maxnreg")
        {
            return Err(err(
                name,
                i as u32,
                format!("unsupported kernel directive `{line}`"),
            ));
        }
    }
    let mut b = Builder {
        kernel: name.to_string(),
        line: 0,
        scopes: vec![HashMap::new()],
        slots: SPECIALS,
        constants: HashMap::new(),
        params,
        tables,
        labels: HashMap::new(),
        branches: Vec::new(),
        code: Vec::new(),
        text: Vec::new(),
    };
    let mut depth = 1;
    while depth > 0 {
        let Some(line) = lines.get(i) else {
            return Err(err(name, i as u32, "unterminated kernel body"));
        };
        i += 1;
        b.line = i as u32;
        // statements of the line: `{`, `}`, `label:`, `... ;`
        let mut rest = line.trim();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('{') {
                depth += 1;
                b.scopes.push(HashMap::new());
                rest = r.trim_start();
            } else if let Some(r) = rest.strip_prefix('}') {
                depth -= 1;
                if depth > 0 {
                    b.scopes.pop();
                }
                rest = r.trim_start();
                if depth == 0 && !rest.is_empty() {
                    return Err(b.e(format!("text after the kernel body: `{rest}`")));
                }
            } else if let Some((stmt, r)) = rest.split_once(';') {
                let stmt = stmt.trim();
                if stmt.starts_with('.') {
                    b.declare(stmt)?;
                } else {
                    b.instruction(stmt)?;
                }
                rest = r.trim_start();
            } else if let Some(label) = rest.strip_suffix(':') {
                if b.labels
                    .insert(label.trim().to_string(), b.code.len())
                    .is_some()
                {
                    return Err(b.e(format!("label `{label}` defined twice")));
                }
                rest = "";
            } else {
                return Err(b.e(format!("unsupported statement `{rest}`")));
            }
        }
    }
    let kernel = b.finish(max_threads, required_block)?;
    Ok((kernel, i))
}
