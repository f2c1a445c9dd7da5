//! q5_1, AVX2 and AVX-512: q5_0's 5-bit codes, unsigned, as `q * d + m`. Mirrors
//! `cpu/q5_1.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, nibbles32, Isa, Out};
use crate::blocks::block_q5_1;

kernel!(q5_1::Q5_1, |src, out| {
    let b4 = _mm256_set1_epi8(0x10);
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_q5_1>() * 32) };
    for b in src.chunks_exact(size_of::<block_q5_1>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = _mm256_set1_ps(unsafe { f16_at(p.add(offset_of!(block_q5_1, d))) });
        // SAFETY: `m` lies inside the block.
        let m = _mm256_set1_ps(unsafe { f16_at(p.add(offset_of!(block_q5_1, m))) });
        // SAFETY: the 4 bytes of `qh` lie inside the block; an unaligned read.
        let qh = unsafe { std::ptr::read_unaligned(p.add(offset_of!(block_q5_1, qh)).cast::<u32>()) };
        // SAFETY: the kernel has the features `bits_to_bytes` needs.
        let high = _mm256_and_si256(unsafe { S::bits_to_bytes(u32::from_le(qh)) }, b4);
        // SAFETY: the 16 bytes of `qs` lie inside the block.
        let q = _mm256_or_si256(unsafe { nibbles32(p.add(offset_of!(block_q5_1, qs))) }, high);
        // SAFETY: the block's 32 values: 32 per block, `n` in all.
        unsafe { w.u8x32_mul_add(q, d, m) };
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
