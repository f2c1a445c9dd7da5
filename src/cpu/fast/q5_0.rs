//! q5_0, AVX2: 32 nibbles (q4_0's order) with bit `j` of `qh` as element `j`'s
//! fifth bit, offset by 16 as bytes, times `d`. Mirrors `cpu/q5_0.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{bits_to_bytes, f16_at, nibbles32, store_i8x32_mul};
use crate::blocks::block_q5_0;
use crate::cpu::OutElem;

#[target_feature(enable = "avx2,f16c")]
pub unsafe fn avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]) {
    let (b4, sixteen) = (_mm256_set1_epi8(0x10), _mm256_set1_epi8(16));
    for (b, y) in src
        .chunks_exact(size_of::<block_q5_0>())
        .zip(out.chunks_exact_mut(32))
    {
        let p = b.as_ptr();
        let d = _mm256_set1_ps(f16_at(p.add(offset_of!(block_q5_0, d))));
        let qh = std::ptr::read_unaligned(p.add(offset_of!(block_q5_0, qh)).cast::<u32>());
        let high = _mm256_and_si256(bits_to_bytes(u32::from_le(qh)), b4);
        let q = _mm256_or_si256(nibbles32(p.add(offset_of!(block_q5_0, qs))), high);
        store_i8x32_mul::<O, NT>(y.as_mut_ptr(), _mm256_sub_epi8(q, sixteen), d);
    }
}
