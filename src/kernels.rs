//! The CUDA kernels as the launcher sees them: their names and launch
//! geometry, from the list of formats (`src/formats.rs`), from which build.rs
//! also writes the C side's dispatch table: the GPU launcher and the
//! host-emulated grid launch the same kernels with the same geometry.

use crate::error::{Error, Result};
use crate::formats::{PLAIN_VALS, THREADS_PER_BLOCK};
use crate::types::{GgmlType, OutType};

/// Threads per CUDA block.
pub const THREADS: u32 = THREADS_PER_BLOCK;

/// Grids larger than this use the kernels' grid-stride loop instead of more blocks.
pub const MAX_GRID: u32 = 1 << 20;

/// What a launch of one kernel looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelInfo {
    pub ty: GgmlType,
    /// The kernel's name in the list (`gdq_<name>_<out>` in the image).
    pub name: &'static str,
    /// The one-element kernel that finishes f32/f16/bf16 tensors.
    pub tail: bool,
    /// Threads that decode one block.
    pub parts: u32,
    /// Elements per block as the kernel sees it (8 for f32/f16/bf16's main kernels).
    pub qk: u32,
}

macro_rules! kernel_table {
    ($( $file:ident { $( $ty:ident => $name:ident : $parts:literal $(/ $tail:ident)? ),+ } )*) => {
        /// Every kernel: each listed type's main kernel, then the tails.
        pub const KERNELS: &[KernelInfo] = &[
            $( $( KernelInfo::main(GgmlType::$ty, stringify!($name), $parts), )+ )*
            $( $( $( KernelInfo::tail(GgmlType::$ty, stringify!($tail)), )? )+ )*
        ];
    };
}
crate::for_each_format!(kernel_table);

impl KernelInfo {
    const fn main(ty: GgmlType, name: &'static str, parts: u32) -> Self {
        let elems = ty.info().block_elems as u32;
        // the plain types' threads take PLAIN_VALS elements each
        let qk = if elems == 1 { PLAIN_VALS } else { elems };
        KernelInfo {
            ty,
            name,
            tail: false,
            parts,
            qk,
        }
    }

    const fn tail(ty: GgmlType, name: &'static str) -> Self {
        KernelInfo {
            ty,
            name,
            tail: true,
            parts: 1,
            qk: 1,
        }
    }

    /// The main kernel of a type, or `None` where there is none.
    pub fn of(ty: GgmlType) -> Option<Self> {
        KERNELS.iter().copied().find(|k| k.ty == ty && !k.tail)
    }

    /// The tail kernel of f32/f16/bf16 (one element a thread, any alignment).
    pub fn tail_of(ty: GgmlType) -> Option<Self> {
        KERNELS.iter().copied().find(|k| k.ty == ty && k.tail)
    }

    /// The kernel's symbol in the fatbin: `gdq_<name>_<out>`.
    pub fn symbol(&self, out: OutType) -> String {
        format!("gdq_{}_{}", self.name, out.name())
    }

    /// The input bytes of one kernel block.
    pub fn block_bytes(&self) -> u64 {
        (self.ty.block_bytes() * self.qk as usize / self.ty.block_elems()) as u64
    }

    /// (grid, threads) for `n_blocks` blocks, the grid capped at `max_grid`.
    pub fn geometry(&self, n_blocks: u64, max_grid: u32) -> (u32, u32) {
        let work = n_blocks.saturating_mul(self.parts as u64);
        let grid = work
            .div_ceil(THREADS as u64)
            .clamp(1, max_grid.max(1) as u64);
        (grid as u32, THREADS)
    }
}

/// Runs `decode` over independent pieces of a tensor of `ty` (`blocks`
/// kernel blocks each, input and output in step) on the host's threads
/// (`crate::pool`'s): how the host-run kernels (emulated grid, PTX
/// interpreter) split a tensor into launches.
pub fn for_each_piece<O: crate::out::OutElem>(
    ty: GgmlType,
    src: &[u8],
    out: &mut [O],
    blocks: usize,
    decode: impl Fn(&[u8], &mut [O]) -> Result<()> + Sync,
) -> Result<()> {
    use rayon::prelude::*;
    let k = KernelInfo::of(ty).ok_or(Error::Unsupported { tensor: None, ty })?;
    crate::pool::install(|| {
        out.par_chunks_mut(blocks * k.qk as usize)
            .zip(src.par_chunks(blocks * k.block_bytes() as usize))
            .try_for_each(|(y, x)| decode(x, y))
    })?
}

/// One launch of a tensor's decode: `n_blocks` kernel blocks starting at input
/// byte `src_offset` and output element `dst_offset`.
#[derive(Clone, Copy, Debug)]
pub struct Launch {
    pub kernel: KernelInfo,
    pub src_offset: u64,
    pub dst_offset: u64,
    pub n_blocks: u64,
}

/// How `n_elems` elements of `ty` are decoded: one launch of the type's kernel,
/// or for f32/f16/bf16 the 8-wide kernel over whole groups of 8 and the tail
/// kernel over the rest (over everything when input or output is not 16-byte
/// aligned, as the wide loads and stores need). `None` where there is no kernel.
pub fn launches(ty: GgmlType, n_elems: u64, aligned16: bool) -> Option<Vec<Launch>> {
    let main = KernelInfo::of(ty)?;
    let Some(tail) = KernelInfo::tail_of(ty) else {
        let n_blocks = n_elems / main.qk as u64;
        return Some(vec![Launch {
            kernel: main,
            src_offset: 0,
            dst_offset: 0,
            n_blocks,
        }]);
    };
    let wide = if aligned16 {
        n_elems / main.qk as u64
    } else {
        0
    };
    let wide_elems = wide * main.qk as u64;
    let mut launches = Vec::with_capacity(2);
    if wide > 0 {
        launches.push(Launch {
            kernel: main,
            src_offset: 0,
            dst_offset: 0,
            n_blocks: wide,
        });
    }
    if n_elems > wide_elems {
        launches.push(Launch {
            kernel: tail,
            src_offset: wide_elems * ty.block_bytes() as u64,
            dst_offset: wide_elems,
            n_blocks: n_elems - wide_elems,
        });
    }
    Some(launches)
}

/// Checks a launch's device addresses as the kernels need them: they read
/// block fields through typed pointers and write 16-byte vectors (a GPU
/// faults otherwise). Device buffers from the allocator always satisfy this,
/// views at odd offsets may not. The GPU launcher and the emulated device
/// both check with this before launching.
pub fn check_alignment(ty: GgmlType, src: u64, dst: u64, out_size: usize) -> Result<()> {
    let src_align = match ty {
        GgmlType::F32 => 4,
        GgmlType::MXFP4 | GgmlType::NVFP4 => 1,
        _ => 2,
    };
    let dst_align = if ty.block_elems() == 1 {
        out_size as u64
    } else {
        16
    };
    if !src.is_multiple_of(src_align) {
        return Err(Error::Invalid(format!(
            "device input at {src:#x} is not {src_align}-byte aligned, as {ty} blocks must be"
        )));
    }
    if !dst.is_multiple_of(dst_align) {
        return Err(Error::Invalid(format!(
            "device output at {dst:#x} is not {dst_align}-byte aligned"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dequantizable_type_has_a_kernel() {
        for ty in GgmlType::dequantizable() {
            let k = KernelInfo::of(ty).unwrap_or_else(|| panic!("{ty} has no kernel"));
            assert_eq!(k.qk % k.parts, 0, "{ty}");
            match KernelInfo::tail_of(ty) {
                // f32/f16/bf16: 8 elements a thread, and a one-element tail kernel.
                Some(t) => assert_eq!(
                    (ty.block_elems(), k.qk, t.qk, t.parts),
                    (1, 8, 1, 1),
                    "{ty}"
                ),
                None => assert_eq!(k.qk as usize, ty.block_elems(), "{ty}"),
            }
        }
        for ty in [GgmlType::Q8_1, GgmlType::Q8_K, GgmlType::I32] {
            assert!(KernelInfo::of(ty).is_none(), "{ty}");
        }
    }

    #[test]
    fn geometry_caps_the_grid() {
        let k = KernelInfo::of(GgmlType::Q4_0).unwrap();
        assert_eq!(k.geometry(1, MAX_GRID), (1, THREADS));
        let (g, _) = k.geometry(u64::MAX / 2, MAX_GRID);
        assert_eq!(g, MAX_GRID);
        assert_eq!(k.symbol(OutType::BF16), "gdq_q4_0_bf16");
        assert_eq!(
            KernelInfo::of(GgmlType::Q4_K).unwrap().symbol(OutType::F32),
            "gdq_q4_k_f32"
        );
        assert_eq!(
            KernelInfo::tail_of(GgmlType::BF16)
                .unwrap()
                .symbol(OutType::F16),
            "gdq_bf16_tail_f16"
        );
        assert!(KernelInfo::tail_of(GgmlType::Q4_0).is_none());
    }

    #[test]
    fn plans_cover_every_element_once() {
        for (ty, n, aligned) in [
            (GgmlType::Q4_0, 64, true),
            (GgmlType::F16, 19, true),
            (GgmlType::F16, 16, true),
            (GgmlType::F32, 5, true),
            (GgmlType::F32, 21, false),
        ] {
            let p = launches(ty, n, aligned).unwrap();
            let mut next = 0;
            for l in &p {
                assert_eq!(l.dst_offset, next, "{ty} {n}");
                let blocks_before = l.dst_offset / ty.block_elems() as u64;
                assert_eq!(l.src_offset, blocks_before * ty.block_bytes() as u64);
                next += l.n_blocks * l.kernel.qk as u64;
            }
            assert_eq!(next, n, "{ty} {n}");
        }
        assert_eq!(launches(GgmlType::F16, 19, true).unwrap().len(), 2);
        assert_eq!(launches(GgmlType::F16, 16, true).unwrap().len(), 1);
        let unaligned = launches(GgmlType::F32, 21, false).unwrap();
        assert!(unaligned.iter().all(|l| l.kernel.tail));
    }
}
