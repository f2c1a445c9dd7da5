//! Shards (`src/shard.rs`) of a tensor of random type and shape, against
//! slicing the whole decode. The input builds a one-tensor GGUF file:
//!
//! - byte 0: the type, as in `cpu_decoders` (its id if decodable, else an
//!   index into the decodable types);
//! - byte 1: bits 0-1 the number of dimensions less one; bit 2 read the file
//!   from disk (mapped; shards read with `pread`) rather than from memory;
//!   bits 3-5 how the shard is picked (explicit ranges, in range or not,
//!   aligned or not; `Shard::of_rows`, `Shard::of_cols`, `Split::shard`;
//!   the whole tensor; arbitrary `u64` bounds);
//! - bytes 2-5: the dimensions (`ne0` in whole blocks or not, zeros, and
//!   huge ones, which only an empty tensor can have);
//! - bytes 6-21: four little-endian `u32`s picking the shard;
//! - the rest: the tensor's bytes, repeated to its length.
//!
//! No input may panic. A shard that `Shard::check` refuses must be an error
//! of `dequantize_shard` (never a panic or a partial decode); an accepted
//! one must decode, to f32, f16 and bf16, to exactly the values of slicing
//! the whole tensor's decode (`rows x cols`, row-major), to the bit (a NaN
//! matches any NaN: NaN bits are not part of the contract), and its shape
//! must hold its elements. An output of the wrong length is an error.
//! `of_rows`/`of_cols` parts are never empty and tile the tensor.

#![no_main]

mod common;

use std::sync::OnceLock;

use gguf_dequant::gguf::{GgufFile, GgufWriter, TensorInfo};
use gguf_dequant::shard::{dequantize_shard, Shard, Split};
use gguf_dequant::{cpu, GgmlType, OutElem};
use half::{bf16, f16};
use libfuzzer_sys::fuzz_target;

static TYPES: OnceLock<Vec<GgmlType>> = OnceLock::new();

/// The most elements of a non-empty tensor (keeps executions fast).
const MAX_ELEMS: u64 = 1 << 16;

const NAMES: [&str; 6] = [
    "blk.0.attn_q.weight",
    "blk.0.ffn_up.weight",
    "blk.0.attn_output.weight",
    "blk.0.ffn_down.weight",
    "token_embd.weight",
    "t",
];

fuzz_target!(|data: &[u8]| {
    let types = TYPES.get_or_init(common::ready_types);
    if data.len() < 22 {
        return;
    }
    let (head, rest) = data.split_at(22);
    let ty = GgmlType::from_id(head[0].into())
        .filter(|t| types.contains(t))
        .unwrap_or(types[head[0] as usize % types.len()]);
    let flags = head[1];
    let ndims = (flags & 3) as usize + 1;
    let from_disk = flags & 4 != 0;
    let mode = (flags >> 3) & 7;
    let qk = ty.block_elems() as u64;
    let ne: Vec<u64> = head[2..2 + ndims]
        .iter()
        .enumerate()
        .map(|(i, &b)| dim(b, i == 0, qk))
        .collect();
    let p: Vec<u32> = head[6..22]
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();

    // the tensor: its bytes the rest of the input, repeated
    let n_elems = if ne.contains(&0) {
        0
    } else {
        ne.iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .unwrap_or(u64::MAX)
    };
    if n_elems > MAX_ELEMS {
        return;
    }
    let Some(nbytes) = ty.bytes_for(n_elems) else {
        return;
    };
    let bytes: Vec<u8> = if rest.is_empty() {
        vec![0; nbytes as usize]
    } else {
        rest.iter().copied().cycle().take(nbytes as usize).collect()
    };
    let name = NAMES[p[3] as usize % NAMES.len()];
    let mut w = GgufWriter::new();
    if w.add_tensor(name, ty, &ne, bytes).is_err() {
        // huge dimensions of a non-empty tensor, or ne0 not whole blocks
        return;
    }
    let file = if from_disk {
        let path =
            std::env::temp_dir().join(format!("gdq-fuzz-shards-{}.gguf", std::process::id()));
        w.write_file(&path).expect("writing the fuzz file");
        GgufFile::open(&path).expect("the writer's file must read")
    } else {
        GgufFile::from_bytes(w.to_bytes()).expect("the writer's file must read")
    };
    let t = &file.tensors()[0];
    assert_eq!(t.ne, ne);

    let cols = ne[0];
    let rows: u64 = ne[1..].iter().product();
    let shard = match mode {
        // explicit ranges near the tensor's (in or out of it, aligned or not)
        0 => Shard {
            rows: near(p[0], rows, 1)..near(p[1], rows, 1),
            cols: near(p[2], cols, qk)..near(p[3], cols, qk),
        },
        1 => Shard {
            rows: near(p[0], rows, 1)..near(p[1], rows, 1),
            cols: 0..cols,
        },
        2 => Shard {
            rows: 0..rows,
            cols: near(p[2], cols, qk)..near(p[3], cols, qk),
        },
        3 => match Shard::of_rows(t, p[0] as u64 % 70, p[1] as u64 % 70) {
            Ok(s) => s,
            Err(_) => return check_parts(t, p[1] as u64 % 70, true),
        },
        4 => match Shard::of_cols(t, p[0] as u64 % 70, p[1] as u64 % 70) {
            Ok(s) => s,
            Err(_) => return check_parts(t, p[1] as u64 % 70, false),
        },
        5 => {
            let world = (p[1] as u64 % 9).max(1);
            match Split::megatron(t).shard(t, p[0] as u64 % world, world) {
                Ok(s) => s,
                Err(_) => return,
            }
        }
        6 => Shard::whole(t),
        // arbitrary bounds, the largest included
        _ => Shard {
            rows: wild(p[0])..wild(p[1]),
            cols: wild(p[2])..wild(p[3]),
        },
    };
    if matches!(mode, 3 | 4) {
        check_parts(t, p[1] as u64 % 70, mode == 3);
    }

    let ok = shard.check(&t.name, t.ty, &t.ne).is_ok();
    if !ok {
        assert!(
            matches!(mode, 0 | 1 | 2 | 7),
            "{mode}: a rule made an invalid shard {shard:?}"
        );
        let mut out = vec![0f32; 16];
        assert!(dequantize_shard(&file, t, &shard, &mut out).is_err());
        let mut empty: Vec<f32> = Vec::new();
        assert!(dequantize_shard(&file, t, &shard, &mut empty).is_err());
        return;
    }
    let n = shard.n_elems();
    assert!(n <= n_elems);
    assert_eq!(shard.shape(&t.ne).iter().product::<u64>(), n);
    assert_eq!(shard.is_whole(&t.ne), shard == Shard::whole(t));
    let whole_data = file.tensor_data(t).unwrap();
    compare::<f32>(&file, t, &shard, whole_data);
    compare::<f16>(&file, t, &shard, whole_data);
    compare::<bf16>(&file, t, &shard, whole_data);
    let mut wrong = vec![0f32; n as usize + 1];
    assert!(dequantize_shard(&file, t, &shard, &mut wrong).is_err());
    if n > 0 {
        let mut wrong = vec![0f32; n as usize - 1];
        assert!(dequantize_shard(&file, t, &shard, &mut wrong).is_err());
    }
});

/// A dimension from a byte: `ne0` in whole blocks (`0x40` set: plus a part
/// block); `0xc0` set: huge, `2^(b % 64)`; else 0 to 63.
fn dim(b: u8, first: bool, qk: u64) -> u64 {
    let v = (b & 0x3f) as u64;
    if b & 0xc0 == 0xc0 {
        return 1u64.checked_shl(v as u32 + 8).unwrap_or(u64::MAX);
    }
    if first {
        let part = if b & 0x40 != 0 { 1 } else { 0 };
        v % 17 * qk + part
    } else {
        v % 9
    }
}

/// A bound near `0..=n`: a multiple of `unit` (or, top bit set, not),
/// sometimes past `n`.
fn near(p: u32, n: u64, unit: u64) -> u64 {
    let units = n.div_ceil(unit);
    let v = (p & 0xffff) as u64 % (units + 3) * unit;
    if p & 0x8000_0000 != 0 {
        v + (p >> 16) as u64 % unit.max(2)
    } else {
        v
    }
}

/// Any `u64`, the largest and the smallest more likely.
fn wild(p: u32) -> u64 {
    match p >> 30 {
        0 => p as u64 & 0xff,
        1 => u64::MAX - (p as u64 & 0xff),
        2 => (p as u64) << 32,
        _ => p as u64,
    }
}

/// `parts` parts of `t`'s rows (`by_rows`) or columns: all or none exist;
/// each is valid, not empty in the split dimension, and the whole of the
/// other; together they are the tensor, in order.
fn check_parts(t: &TensorInfo, parts: u64, by_rows: bool) {
    let rule = if by_rows {
        Shard::of_rows
    } else {
        Shard::of_cols
    };
    let all: Vec<_> = (0..parts).map(|i| rule(t, i, parts)).collect();
    assert!(rule(t, parts, parts).is_err());
    if parts == 0 {
        return;
    }
    if all.iter().any(|s| s.is_err()) {
        assert!(
            all.iter().all(|s| s.is_err()),
            "{parts} parts of {:?}: only some exist",
            t.ne
        );
        return;
    }
    let whole = Shard::whole(t);
    let (span, other) = if by_rows {
        (&whole.rows, &whole.cols)
    } else {
        (&whole.cols, &whole.rows)
    };
    let mut at = span.start;
    for s in all.into_iter().map(Result::unwrap) {
        s.check(&t.name, t.ty, &t.ne).unwrap();
        let (r, o) = if by_rows {
            (&s.rows, &s.cols)
        } else {
            (&s.cols, &s.rows)
        };
        assert!(r.start < r.end, "empty part {s:?} of {:?}", t.ne);
        assert_eq!(o, other, "part {s:?} of {:?} not whole across", t.ne);
        assert_eq!(r.start, at, "parts of {:?} not contiguous", t.ne);
        at = r.end;
    }
    assert_eq!(at, span.end, "parts of {:?} do not cover it", t.ne);
}

/// The shard decoded alone equals the whole decode sliced (a NaN matches any NaN).
fn compare<O: Bits>(file: &GgufFile, t: &TensorInfo, shard: &Shard, whole_data: &[u8]) {
    let whole: Vec<O> = cpu::dequantize_to_vec(t.ty, whole_data).unwrap();
    let n = shard.n_elems() as usize;
    let mut got = vec![O::default(); n];
    dequantize_shard(file, t, shard, &mut got)
        .unwrap_or_else(|e| panic!("shard {shard:?} of {:?} {}: {e}", t.ne, t.ty));
    if n == 0 {
        // an empty shard (of an empty tensor's rows, maybe 2^60 of them)
        return;
    }
    let ne0 = t.ne[0] as usize;
    let want = shard.rows.clone().flat_map(|r| {
        let row = r as usize * ne0;
        whole[row + shard.cols.start as usize..row + shard.cols.end as usize].iter()
    });
    let mut count = 0;
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            a.bits() == b.bits() || (a.nan() && b.nan()),
            "{}: shard {shard:?} of {:?}: value {i} is {a:?}, the whole decode's {b:?}",
            t.ty,
            t.ne
        );
        count += 1;
    }
    assert_eq!(count, n);
}

/// The output types' bits and NaNs.
trait Bits: OutElem + std::fmt::Debug {
    fn bits(self) -> u32;
    fn nan(self) -> bool;
}

impl Bits for f32 {
    fn bits(self) -> u32 {
        self.to_bits()
    }
    fn nan(self) -> bool {
        self.is_nan()
    }
}

impl Bits for f16 {
    fn bits(self) -> u32 {
        self.to_bits().into()
    }
    fn nan(self) -> bool {
        self.is_nan()
    }
}

impl Bits for bf16 {
    fn bits(self) -> u32 {
        self.to_bits().into()
    }
    fn nan(self) -> bool {
        self.is_nan()
    }
}
