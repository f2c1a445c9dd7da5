//! mxfp4, AVX2 and AVX-512: 32 E2M1 nibbles (q4_0's order) indexing their
//! values as doubled integers, times half the E8M0 scale, `2^(e - 128)`
//! (`Out::i4x32_mul`).
//! Mirrors `cpu/mxfp4.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, nibbles32, Isa, Out};
use crate::blocks::block_mxfp4;
use crate::tables::KVALUES_MXFP4;

/// `2^(e - 128)`, exactly (f32 subnormals for e < 2).
#[inline(always)]
fn e8m0_half(e: u8) -> f32 {
    if e < 2 {
        f32::from_bits(0x0020_0000 << e)
    } else {
        f32::from_bits(((e - 1) as u32) << 23)
    }
}

kernel!(mxfp4::MXFP4, |src, out| {
    // SAFETY: the table is 16 bytes, the load's size.
    let values = _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(KVALUES_MXFP4.as_ptr().cast()) });
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_mxfp4>() * 32) };
    for b in src.chunks_exact(size_of::<block_mxfp4>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `e` lies inside it.
        let d = _mm256_set1_ps(e8m0_half(unsafe { *p.add(offset_of!(block_mxfp4, e)) }));
        // SAFETY: the 16 bytes of `qs` lie inside the block.
        let q = unsafe { nibbles32(p.add(offset_of!(block_mxfp4, qs))) };
        // SAFETY: the block's 32 values: 32 per block, `n` in all.
        unsafe { w.i4x32_mul(q, values, d) };
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
