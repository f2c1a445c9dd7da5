//! iq4_nl, AVX2: 32 nibbles (q4_0's order) looked up in the 16 non-linear
//! values with one byte shuffle, times `d`. Mirrors `cpu/iq4_nl.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{f16_at, nibbles32, store_i8x32_mul};
use crate::blocks::block_iq4_nl;
use crate::cpu::OutElem;
use crate::tables::KVALUES_IQ4NL;

#[target_feature(enable = "avx2,f16c")]
pub unsafe fn avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
    let values = _mm256_broadcastsi128_si256(_mm_loadu_si128(KVALUES_IQ4NL.as_ptr().cast()));
    for (b, y) in src
        .chunks_exact(size_of::<block_iq4_nl>())
        .zip(out.chunks_exact_mut(32))
    {
        let p = b.as_ptr();
        let d = _mm256_set1_ps(f16_at(p.add(offset_of!(block_iq4_nl, d))));
        let q = _mm256_shuffle_epi8(values, nibbles32(p.add(offset_of!(block_iq4_nl, qs))));
        store_i8x32_mul::<O, NT>(y.as_mut_ptr(), q, d);
    }
}
