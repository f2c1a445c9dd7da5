//! q8_0, AVX2 and AVX-512: 32 signed bytes times `d`. Mirrors `cpu/q8_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, load32, prefetch_ahead, Isa, Out};
use crate::blocks::block_q8_0;

kernel!(q8_0::Q8_0, |src, out| {
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_q8_0>() * 32) };
    for b in src.chunks_exact(size_of::<block_q8_0>()) {
        let p = b.as_ptr();
        if NT {
            prefetch_ahead(p);
        }
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = _mm256_set1_ps(unsafe { f16_at(p.add(offset_of!(block_q8_0, d))) });
        // SAFETY: the 32 bytes of `qs` lie inside the block.
        let qs = unsafe { load32(p.add(offset_of!(block_q8_0, qs))) };
        // SAFETY: the block's 32 values: 32 per block, `n` in all.
        unsafe { w.i8x32_mul(qs, d) };
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
