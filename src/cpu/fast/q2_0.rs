//! q2_0, AVX2: the 2-bit codes of each byte (4 elements, lowest bits first)
//! interleaved back into element order with byte and word unpacks, offset by
//! 1 as bytes, times `d`. Mirrors `cpu/q2_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{f16_at, load16, store_i8x16_mul};
use crate::blocks::block_q2_0;
use crate::cpu::OutElem;

#[target_feature(enable = "avx2,f16c")]
pub unsafe fn avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
    let (m2, one) = (_mm_set1_epi8(3), _mm_set1_epi8(1));
    for (b, y) in src
        .chunks_exact(size_of::<block_q2_0>())
        .zip(out.chunks_exact_mut(64))
    {
        let p = b.as_ptr();
        let d = _mm256_set1_ps(f16_at(p.add(offset_of!(block_q2_0, d))));
        let qs = load16(p.add(offset_of!(block_q2_0, qs)));
        // c[k]: bit pair k of every byte, minus 1
        let c = [
            qs,
            _mm_srli_epi16::<2>(qs),
            _mm_srli_epi16::<4>(qs),
            _mm_srli_epi16::<6>(qs),
        ]
        .map(|x| _mm_sub_epi8(_mm_and_si128(x, m2), one));
        // (c0, c1) and (c2, c3) byte-interleaved, then word-interleaved: bytes
        // 4j..4j + 4 are the codes of byte j
        let (c01_lo, c01_hi) = (_mm_unpacklo_epi8(c[0], c[1]), _mm_unpackhi_epi8(c[0], c[1]));
        let (c23_lo, c23_hi) = (_mm_unpacklo_epi8(c[2], c[3]), _mm_unpackhi_epi8(c[2], c[3]));
        let ordered = [
            _mm_unpacklo_epi16(c01_lo, c23_lo),
            _mm_unpackhi_epi16(c01_lo, c23_lo),
            _mm_unpacklo_epi16(c01_hi, c23_hi),
            _mm_unpackhi_epi16(c01_hi, c23_hi),
        ];
        let y = y.as_mut_ptr();
        for (i, q) in ordered.into_iter().enumerate() {
            store_i8x16_mul::<O, NT>(y.add(16 * i), q, d);
        }
    }
}
