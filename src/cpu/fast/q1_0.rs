//! q1_0, AVX2: each bit picks `d` (set) or `-d` (clear): the bits expanded to
//! lane masks that flip the sign of `d` where clear. Mirrors `cpu/q1_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{f16_at, store8};
use crate::blocks::block_q1_0;
use crate::cpu::OutElem;

#[target_feature(enable = "avx2,f16c")]
pub unsafe fn avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
    let bit = _mm256_set_epi32(128, 64, 32, 16, 8, 4, 2, 1);
    let sign = _mm256_set1_epi32(i32::MIN);
    for (b, y) in src
        .chunks_exact(size_of::<block_q1_0>())
        .zip(out.chunks_exact_mut(128))
    {
        let p = b.as_ptr();
        let d = _mm256_castps_si256(_mm256_set1_ps(f16_at(p.add(offset_of!(block_q1_0, d)))));
        let qs = p.add(offset_of!(block_q1_0, qs));
        for j in 0..16 {
            let set = _mm256_cmpeq_epi32(
                _mm256_and_si256(_mm256_set1_epi32(*qs.add(j) as i32), bit),
                bit,
            );
            // -d is d with its sign flipped, exactly
            let v = _mm256_xor_si256(d, _mm256_andnot_si256(set, sign));
            store8::<O, NT>(y.as_mut_ptr().add(8 * j), _mm256_castsi256_ps(v));
        }
    }
}
