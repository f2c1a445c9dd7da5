//! q4_1, AVX2: the 16 code bytes as 32 nibbles (q4_0's order), `q * d + m`.
//! Mirrors `cpu/q4_1.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{f16_at, nibbles32, store_u8x32_mul_add};
use crate::blocks::block_q4_1;
use crate::cpu::OutElem;

#[target_feature(enable = "avx2,f16c")]
pub unsafe fn avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
    for (b, y) in src
        .chunks_exact(size_of::<block_q4_1>())
        .zip(out.chunks_exact_mut(32))
    {
        let p = b.as_ptr();
        let d = _mm256_set1_ps(f16_at(p.add(offset_of!(block_q4_1, d))));
        let m = _mm256_set1_ps(f16_at(p.add(offset_of!(block_q4_1, m))));
        let q = nibbles32(p.add(offset_of!(block_q4_1, qs)));
        store_u8x32_mul_add::<O, NT>(y.as_mut_ptr(), q, d, m);
    }
}
