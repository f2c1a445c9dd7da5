//! iq4_nl, AVX2 and AVX-512: 32 nibbles (q4_0's order) indexing the 16
//! non-linear values, times `d` (`Out::i4x32_mul`: the 16 products looked up
//! for 16-bit outputs). Mirrors `cpu/iq4_nl.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, nibbles32, Isa, Out};
use crate::blocks::block_iq4_nl;
use crate::tables::KVALUES_IQ4NL;

kernel!(iq4_nl::IQ4_NL, |src, out| {
    // SAFETY: the table is 16 bytes, the load's size.
    let values = _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast()) });
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_iq4_nl>() * 32) };
    for b in src.chunks_exact(size_of::<block_iq4_nl>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = _mm256_set1_ps(unsafe { f16_at(p.add(offset_of!(block_iq4_nl, d))) });
        // SAFETY: the 16 bytes of `qs` lie inside the block.
        let q = unsafe { nibbles32(p.add(offset_of!(block_iq4_nl, qs))) };
        // SAFETY: the block's 32 values: 32 per block, `n` in all.
        unsafe { w.i4x32_mul(q, values, d) };
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
