//! q1_0, AVX2 and AVX-512: each bit picks `d` (set) or `-d` (clear), 32 bits
//! at a time (`Out::signs_x32`). Mirrors `cpu/q1_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, Isa, Out};
use crate::blocks::block_q1_0;

kernel!(q1_0::Q1_0, |src, out| {
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_q1_0>() * 128) };
    for b in src.chunks_exact(size_of::<block_q1_0>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = _mm256_set1_ps(unsafe { f16_at(p.add(offset_of!(block_q1_0, d))) });
        // SAFETY: the 16 bytes of `qs` lie inside the block (`src`, borrowed
        // for the whole kernel); bytes need no alignment.
        let qs = unsafe { &*p.add(offset_of!(block_q1_0, qs)).cast::<[u8; 16]>() };
        for bits in qs.chunks_exact(4) {
            let bits = u32::from_le_bytes(bits.try_into().unwrap());
            // SAFETY: 32 of the block's 128 values (4 calls per block), `n` in all.
            unsafe { w.signs_x32(bits, d) };
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
