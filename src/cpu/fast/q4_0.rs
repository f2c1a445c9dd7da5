//! q4_0, AVX2: the 16 code bytes split into low and high nibbles (elements
//! 0..16 and 16..32), offset by 8 as bytes, widened, times `d`. Mirrors
//! `cpu/q4_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{f16_at, load16, store_i8x16_mul};
use crate::blocks::block_q4_0;
use crate::cpu::OutElem;

#[target_feature(enable = "avx2,f16c")]
pub unsafe fn avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
    let (m4, eight) = (_mm_set1_epi8(0xF), _mm_set1_epi8(8));
    for (b, y) in src
        .chunks_exact(size_of::<block_q4_0>())
        .zip(out.chunks_exact_mut(32))
    {
        let p = b.as_ptr();
        let d = _mm256_set1_ps(f16_at(p.add(offset_of!(block_q4_0, d))));
        let qs = load16(p.add(offset_of!(block_q4_0, qs)));
        let lo = _mm_sub_epi8(_mm_and_si128(qs, m4), eight);
        let hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16::<4>(qs), m4), eight);
        let y = y.as_mut_ptr();
        store_i8x16_mul::<O, NT>(y, lo, d);
        store_i8x16_mul::<O, NT>(y.add(16), hi, d);
    }
}
