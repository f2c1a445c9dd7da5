//! q8_0, AVX2: 32 signed bytes times `d`. Mirrors `cpu/q8_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{f16_at, load32, store_i8x32_mul};
use crate::blocks::block_q8_0;
use crate::cpu::OutElem;

#[target_feature(enable = "avx2,f16c")]
pub unsafe fn avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
    for (b, y) in src
        .chunks_exact(size_of::<block_q8_0>())
        .zip(out.chunks_exact_mut(32))
    {
        let p = b.as_ptr();
        let d = _mm256_set1_ps(f16_at(p.add(offset_of!(block_q8_0, d))));
        let qs = load32(p.add(offset_of!(block_q8_0, qs)));
        store_i8x32_mul::<O, NT>(y.as_mut_ptr(), qs, d);
    }
}
