//! q5_0, AVX2 and AVX-512: 32 nibbles (q4_0's order) with bit `j` of `qh` as
//! element `j`'s fifth bit, offset by 16 as bytes, times `d`. Mirrors
//! `cpu/q5_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, nibbles32, Isa, Out};
use crate::blocks::block_q5_0;

kernel!(q5_0::Q5_0, |src, out| {
    let (b4, sixteen) = (_mm256_set1_epi8(0x10), _mm256_set1_epi8(16));
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_q5_0>() * 32) };
    for b in src.chunks_exact(size_of::<block_q5_0>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = _mm256_set1_ps(unsafe { f16_at(p.add(offset_of!(block_q5_0, d))) });
        // SAFETY: the 4 bytes of `qh` lie inside the block; an unaligned read.
        let qh = unsafe { std::ptr::read_unaligned(p.add(offset_of!(block_q5_0, qh)).cast::<u32>()) };
        // SAFETY: the kernel has the features `bits_to_bytes` needs.
        let high = _mm256_and_si256(unsafe { S::bits_to_bytes(u32::from_le(qh)) }, b4);
        // SAFETY: the 16 bytes of `qs` lie inside the block.
        let q = _mm256_or_si256(unsafe { nibbles32(p.add(offset_of!(block_q5_0, qs))) }, high);
        // SAFETY: the block's 32 values: 32 per block, `n` in all.
        unsafe { w.i8x32_mul(_mm256_sub_epi8(q, sixteen), d) };
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
