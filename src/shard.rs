//! Shards of a tensor, for tensor parallelism: whole rows `[r0, r1)`, and/or
//! columns `[c0, c1)` of every row, decoded from only their own blocks.
//!
//! Rows are in the row-major view: a tensor of ggml `ne = [ne0, ne1, ...]` has
//! `ne1 * ne2 * ne3` rows of `ne0` elements, the slowest dimensions flattened
//! (a row shard of a matrix splits its first row-major dimension).
//!
//! Columns split `ne0` at block boundaries: `c0` and `c1` must be multiples of
//! the type's block size (as `ne0` is), since a block's values are only
//! decodable whole; an unaligned split is an error naming the block size,
//! never a silent widening. A shard's blocks, gathered row by row, are
//! themselves whole blocks, so one decode of them gives the shard row-major:
//! `rows x cols` values, the same bits as slicing the whole decoded tensor.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::gguf::{GgufFile, TensorInfo};
use crate::out::OutElem;
use crate::types::GgmlType;

/// A part of a tensor: rows `rows` (row-major), columns `cols` of each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Rows of the row-major view, `[r0, r1)`.
    pub rows: Range<u64>,
    /// Columns of each row, `[c0, c1)`, at block boundaries.
    pub cols: Range<u64>,
}

impl Shard {
    /// All of tensor `t`.
    pub fn whole(t: &TensorInfo) -> Shard {
        let (rows, cols) = dims(&t.ne);
        Shard {
            rows: 0..rows,
            cols: 0..cols,
        }
    }

    /// Part `index` of `parts` splits of `t`'s rows, as even as they go (the
    /// first parts one row more; an error where there are fewer rows than
    /// parts, so no part is empty).
    pub fn of_rows(t: &TensorInfo, index: u64, parts: u64) -> Result<Shard> {
        let (rows, cols) = dims(&t.ne);
        let per = split(rows, index, parts, 1, &t.name, "rows")?;
        Ok(Shard {
            rows: per,
            cols: 0..cols,
        })
    }

    /// Part `index` of `parts` splits of `t`'s columns at block boundaries, as
    /// even as whole blocks go (6 blocks over 4 parts: 2, 2, 1, 1; an error
    /// where a row has fewer blocks than parts, so no part is empty).
    pub fn of_cols(t: &TensorInfo, index: u64, parts: u64) -> Result<Shard> {
        let (rows, cols) = dims(&t.ne);
        let qk = t.ty.block_elems() as u64;
        let per = split(cols, index, parts, qk, &t.name, "columns")?;
        Ok(Shard {
            rows: 0..rows,
            cols: per,
        })
    }

    /// Whether the shard is all of a tensor of dimensions `ne`.
    pub fn is_whole(&self, ne: &[u64]) -> bool {
        let (rows, cols) = dims(ne);
        self.rows == (0..rows) && self.cols == (0..cols)
    }

    /// The row-major shape of the shard of a tensor of dimensions `ne`: the
    /// tensor's own shape when the shard is all of it, `[cols]` for a vector
    /// (`[0]` for its empty row range: a shape always holds the shard's
    /// elements), else `[rows, cols]` (the slow dimensions flattened, as
    /// rows are).
    pub fn shape(&self, ne: &[u64]) -> Vec<u64> {
        let (nr, nc) = (
            self.rows.end - self.rows.start,
            self.cols.end - self.cols.start,
        );
        if self.is_whole(ne) {
            ne.iter().rev().copied().collect()
        } else if ne.len() <= 1 {
            // a vector has one row: its columns, or none of them
            vec![nr * nc]
        } else {
            vec![nr, nc]
        }
    }

    /// Elements in the shard.
    pub fn n_elems(&self) -> u64 {
        (self.rows.end - self.rows.start) * (self.cols.end - self.cols.start)
    }

    /// Checks the shard against a tensor of type `ty` and dimensions `ne`.
    pub fn check(&self, name: &str, ty: GgmlType, ne: &[u64]) -> Result<()> {
        let (rows, cols) = dims(ne);
        let qk = ty.block_elems() as u64;
        let bad = |m: String| {
            Err(Error::Invalid(format!(
                "tensor '{name}': shard {self:?}: {m}"
            )))
        };
        if self.rows.start > self.rows.end || self.rows.end > rows {
            return bad(format!("rows outside 0..{rows}"));
        }
        if self.cols.start > self.cols.end || self.cols.end > cols {
            return bad(format!("columns outside 0..{cols}"));
        }
        if !self.cols.start.is_multiple_of(qk) || !self.cols.end.is_multiple_of(qk) {
            return bad(format!(
                "columns must split rows at {ty} block boundaries (multiples of {qk}): \
                 a block decodes only whole"
            ));
        }
        Ok(())
    }

    /// Tensor `t` cut into pieces of at most `max_elems` elements (and at
    /// least one block), in order, each contiguous in the tensor's row-major
    /// values: runs of whole rows, or, where one row holds more, runs of
    /// whole blocks of a row. A tensor with no elements is one empty piece.
    /// For decoding a tensor of any size in bounded memory.
    pub fn pieces(t: &TensorInfo, max_elems: u64) -> impl Iterator<Item = Shard> {
        let (rows, cols) = dims(&t.ne);
        let qk = t.ty.block_elems() as u64;
        let (rows_per, cols_per) = if cols > 0 && cols <= max_elems {
            ((max_elems / cols).max(1), cols)
        } else {
            (1, (max_elems / qk).max(1) * qk)
        };
        let empty = rows == 0 || cols == 0;
        let whole = Shard::whole(t);
        // no row walk for an empty tensor: [0, 4, 2^40] has 2^42 rows of
        // nothing, and visiting them is a hang
        let row_starts = (0..if empty { 0 } else { rows }).step_by(rows_per as usize);
        let pieces = row_starts.flat_map(move |r0| {
            let r1 = (r0 + rows_per).min(rows);
            (0..cols).step_by(cols_per as usize).map(move |c0| Shard {
                rows: r0..r1,
                cols: c0..(c0 + cols_per).min(cols),
            })
        });
        // the walk gives nothing for an empty tensor: it is the one piece
        std::iter::once(whole).filter(move |_| empty).chain(pieces)
    }

    /// The byte ranges of the shard's blocks in the tensor's data, in order:
    /// one for whole rows, else one per row.
    pub fn byte_ranges(&self, ty: GgmlType, ne: &[u64]) -> Vec<Range<u64>> {
        let (_, cols) = dims(ne);
        let (qk, bb) = (ty.block_elems() as u64, ty.block_bytes() as u64);
        let row_bytes = cols / qk * bb;
        let (b0, b1) = (self.cols.start / qk * bb, self.cols.end.div_ceil(qk) * bb);
        if b0 == 0 && b1 == row_bytes {
            // whole rows: one contiguous range
            return std::iter::once(self.rows.start * row_bytes..self.rows.end * row_bytes)
                .collect();
        }
        self.rows
            .clone()
            .map(|r| r * row_bytes + b0..r * row_bytes + b1)
            .collect()
    }
}

/// How one tensor is spread over the ranks of a tensor-parallel group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Each rank its range of the rows ([`Shard::of_rows`]).
    Rows,
    /// Each rank its range of every row's columns ([`Shard::of_cols`]).
    Cols,
    /// Every rank the whole tensor.
    Replicate,
}

impl Split {
    /// Megatron-style tensor parallelism over llama.cpp's tensor names: the
    /// projections whose outputs a rank computes alone (`attn_q`, `attn_k`,
    /// `attn_v`, `attn_qkv`, `ffn_gate`, `ffn_up`) by rows, the ones that
    /// reduce over those outputs (`attn_output`, `ffn_down`) by columns,
    /// everything else (norms, embeddings, the output head) replicated.
    pub fn megatron(t: &TensorInfo) -> Split {
        let role = t
            .name
            .strip_suffix(".weight")
            .and_then(|n| n.rsplit('.').next());
        match role {
            Some("attn_q" | "attn_k" | "attn_v" | "attn_qkv" | "ffn_gate" | "ffn_up") => {
                Split::Rows
            }
            Some("attn_output" | "ffn_down") => Split::Cols,
            _ => Split::Replicate,
        }
    }

    /// Rank `rank`'s shard of `t` in a group of `world` ranks.
    pub fn shard(self, t: &TensorInfo, rank: u64, world: u64) -> Result<Shard> {
        match self {
            Split::Replicate => Ok(Shard::whole(t)),
            Split::Rows => Shard::of_rows(t, rank, world),
            Split::Cols => Shard::of_cols(t, rank, world),
        }
    }
}

/// (rows, columns) of the row-major view of `ne`.
fn dims(ne: &[u64]) -> (u64, u64) {
    let cols = ne.first().copied().unwrap_or(1);
    (ne.iter().skip(1).product(), cols)
}

/// Part `index` of `parts` of `0..n`, split at multiples of `unit`.
fn split(n: u64, index: u64, parts: u64, unit: u64, name: &str, what: &str) -> Result<Range<u64>> {
    let units = n.div_ceil(unit);
    if parts == 0 || index >= parts || units < parts {
        return Err(Error::Invalid(format!(
            "tensor '{name}': part {index} of {parts} of its {n} {what} (in units of {unit})"
        )));
    }
    // as even as whole units go, the first ranks one unit more: 6 over 4 is
    // 2, 2, 1, 1; none empty
    let (base, extra) = (units / parts, units % parts);
    let first = |i: u64| i * base + i.min(extra);
    Ok((first(index) * unit).min(n)..(first(index + 1) * unit).min(n))
}

/// Decodes shard `shard` of tensor `t` of `file` into `out` (`rows x cols`
/// values, row-major) with `decode`, reading from the file only the shard's
/// blocks (with `pread`, as [`GgufFile::read_tensor`]).
pub fn dequantize_shard_with<O: OutElem>(
    file: &GgufFile,
    t: &TensorInfo,
    shard: &Shard,
    out: &mut [O],
    decode: impl FnOnce(GgmlType, &[u8], &mut [O]) -> Result<()>,
) -> Result<()> {
    shard.check(&t.name, t.ty, &t.ne)?;
    if out.len() as u64 != shard.n_elems() {
        return Err(Error::Length(format!(
            "tensor '{}': shard {shard:?} has {} elements, the output {}",
            t.name,
            shard.n_elems(),
            out.len()
        )));
    }
    let ranges = shard.byte_ranges(t.ty, &t.ne);
    let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    let mut blocks: Vec<u8> = crate::alloc::try_vec(total)
        .ok_or_else(|| Error::Length(format!("tensor '{}': shard too large for memory", t.name)))?;
    let mut at = 0;
    for r in ranges {
        let len = (r.end - r.start) as usize;
        file.read_tensor(t, r.start, &mut blocks[at..at + len])?;
        at += len;
    }
    decode(t.ty, &blocks, out).map_err(|e| e.for_tensor(&t.name))
}

/// [`dequantize_shard_with`] on the CPU's fast path.
pub fn dequantize_shard<O: OutElem>(
    file: &GgufFile,
    t: &TensorInfo,
    shard: &Shard,
    out: &mut [O],
) -> Result<()> {
    dequantize_shard_with(file, t, shard, out, crate::cpu::dequantize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufWriter;

    fn tensor(ty: GgmlType, ne: &[u64]) -> TensorInfo {
        let n: u64 = ne.iter().product();
        let bytes = vec![0u8; (n / ty.block_elems() as u64) as usize * ty.block_bytes()];
        let mut w = GgufWriter::new();
        w.add_tensor("t", ty, ne, bytes).unwrap();
        let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
        f.tensors()[0].clone()
    }

    /// An empty tensor of 2^42 rows of nothing (a hostile file's shape) is
    /// one empty piece at once, not a walk over its rows: the walk hung CI.
    #[test]
    fn an_empty_tensor_of_many_rows_is_one_piece_at_once() {
        let t = tensor(GgmlType::F32, &[0, 4, 1 << 40]);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(Shard::pieces(&t, 1 << 24).collect::<Vec<_>>());
        });
        // the walk takes hours; a minute is only a bound for a loaded machine
        let pieces = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("pieces of an empty tensor did not come");
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].n_elems(), 0);
    }

    /// Pieces are valid shards of at most `max` elements (or one block),
    /// each starting where the one before ended in the tensor's bytes, and
    /// together the whole tensor.
    #[test]
    fn pieces_cover_the_tensor_in_order() {
        let cases: &[(GgmlType, &[u64])] = &[
            (GgmlType::Q4_K, &[512, 7]),
            (GgmlType::Q8_0, &[3200]),
            (GgmlType::F32, &[5, 3, 2]),
            (GgmlType::Q6_K, &[256, 0]),
            (GgmlType::Q4_0, &[0, 4]),
        ];
        for &(ty, ne) in cases {
            let t = tensor(ty, ne);
            let qk = ty.block_elems() as u64;
            for max in [1, 31, 32, 100, 256, 512, 700, 1024, 5000, u64::MAX] {
                let what = format!("{ty} {ne:?} in pieces of {max}");
                let pieces: Vec<Shard> = Shard::pieces(&t, max).collect();
                let mut at = 0;
                let mut elems = 0;
                for p in &pieces {
                    p.check("t", ty, &t.ne).unwrap();
                    assert!(p.n_elems() <= max.max(qk), "{what}: {p:?}");
                    for r in p.byte_ranges(ty, &t.ne) {
                        assert_eq!(r.start, at, "{what}: {p:?}");
                        at = r.end;
                    }
                    elems += p.n_elems();
                }
                assert_eq!((at, elems), (t.nbytes, t.n_elems), "{what}");
                assert!(!pieces.is_empty(), "{what}");
            }
        }
    }
}
