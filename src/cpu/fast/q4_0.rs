//! q4_0, AVX2 and AVX-512: the 16 code bytes split into low and high nibbles
//! (elements 0..16 and 16..32), offset by 8 as bytes, widened, times `d`.
//! Mirrors `cpu/q4_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, load16, Isa, Out};
use crate::blocks::block_q4_0;

kernel!(q4_0::Q4_0, |src, out| {
    let (m4, eight) = (_mm_set1_epi8(0xF), _mm_set1_epi8(8));
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_q4_0>() * 32) };
    for b in src.chunks_exact(size_of::<block_q4_0>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = _mm256_set1_ps(unsafe { f16_at(p.add(offset_of!(block_q4_0, d))) });
        // SAFETY: the 16 bytes of `qs` lie inside the block.
        let qs = unsafe { load16(p.add(offset_of!(block_q4_0, qs))) };
        let lo = _mm_sub_epi8(_mm_and_si128(qs, m4), eight);
        let hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16::<4>(qs), m4), eight);
        // SAFETY: the block's 32 values: 32 per block, `n` in all.
        unsafe { w.i8x32_mul(_mm256_set_m128i(hi, lo), d) };
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
