//! The Rust view of the kernel table in `cuda/formats.def`: kernel names and
//! launch geometry, shared by the GPU launcher and the host-emulated grid.
//!
//! The facts about each kernel (threads per block) come from the compiled kernel
//! source itself, through `cuda/emulate.cpp`, which is always built: there is one
//! place that says how a format is split among threads.

use crate::types::{GgmlType, OutType};

extern "C" {
    fn gdq_kernel_parts(type_id: u32) -> u32;
    fn gdq_kernel_qk(type_id: u32) -> u32;
}

/// Threads per CUDA block (`GDQ_THREADS` in `cuda/common.cuh`).
pub const THREADS: u32 = 256;

/// Grids larger than this use the kernels' grid-stride loop instead of more blocks.
pub const MAX_GRID: u32 = 1 << 20;

/// What a launch of one type's kernel looks like.
#[derive(Clone, Copy, Debug)]
pub struct KernelInfo {
    pub ty: GgmlType,
    /// Threads that decode one block.
    pub parts: u32,
    /// Elements per block as the kernel sees it (1 for f32/f16/bf16).
    pub qk: u32,
}

impl KernelInfo {
    /// The kernel of a type, or `None` where there is none.
    pub fn of(ty: GgmlType) -> Option<Self> {
        // SAFETY: plain functions of integers, defined in cuda/emulate.cpp.
        let (parts, qk) = unsafe { (gdq_kernel_parts(ty.id()), gdq_kernel_qk(ty.id())) };
        (parts > 0).then_some(KernelInfo { ty, parts, qk })
    }

    /// The kernel's symbol in the fatbin: `gdq_<type>_<out>`, lower-case.
    pub fn name(&self, out: OutType) -> String {
        format!("gdq_{}_{}", self.ty.name().to_ascii_lowercase(), out.name())
    }

    /// The number of kernel blocks in `n_elems` elements.
    pub fn blocks_in(&self, n_elems: u64) -> u64 {
        n_elems / self.qk as u64
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

/// The output type's code in `gdq_emulate_launch`.
pub(crate) fn out_code(out: OutType) -> u32 {
    match out {
        OutType::F32 => 0,
        OutType::F16 => 1,
        OutType::BF16 => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dequantizable_type_has_a_kernel() {
        for ty in GgmlType::dequantizable() {
            let k = KernelInfo::of(ty).unwrap_or_else(|| panic!("{ty} has no kernel"));
            assert!(k.qk as usize == ty.block_elems() || k.qk == 1, "{ty}");
            assert_eq!(k.qk % k.parts, 0, "{ty}");
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
        assert_eq!(k.name(OutType::BF16), "gdq_q4_0_bf16");
        assert_eq!(
            KernelInfo::of(GgmlType::Q4_K).unwrap().name(OutType::F32),
            "gdq_q4_k_f32"
        );
    }
}
