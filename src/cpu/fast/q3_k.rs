//! q3_k, AVX2 and AVX-512: per half of the block, bit pair `2k` of its 32 code
//! bytes and bit `4 * half + k` of the 32 `hmask` bytes give 32 3-bit codes
//! `low | h << 2`, each `code - 4` (`q - (h ? 0 : 4)`: a code book of -4..3);
//! each 16 share the scale `d * sc` (`Out::i3x16x2_mul`). Mirrors
//! `cpu/q3_k.rs`.

use std::arch::x86_64::*;
use std::mem::{offset_of, size_of};

use super::x86::{kernel, f16_at, load32, Isa, Out};
use crate::blocks::block_q3_K;

/// Group `g`'s 6-bit scale, offset removed: low 4 bits in nibble `g / 8` of
/// `s[g % 8]`, top 2 bits at bit `2 * (g / 4)` of `s[8 + g % 4]`.
#[inline(always)]
fn group_scale(s: &[u8; 12], g: usize) -> i32 {
    let low = (s[g % 8] >> (4 * (g / 8))) & 0xF;
    let high = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
    (low | high << 4) as i32 - 32
}

kernel!(q3_k::Q3_K, |src, out| {
    let (m2, one) = (_mm256_set1_epi8(3), _mm256_set1_epi8(1));
    let minus_4_to_3 = _mm256_setr_epi8(
        -4, -3, -2, -1, 0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, //
        -4, -3, -2, -1, 0, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0,
    );
    // SAFETY: `S::out` needs the kernel's features and, with `NT`, an aligned
    // output: the kernel's own contract.
    let mut w = unsafe { S::out::<O, NT>(out, src.len() / size_of::<block_q3_K>() * 256) };
    for b in src.chunks_exact(size_of::<block_q3_K>()) {
        let p = b.as_ptr();
        // SAFETY: `p` starts a whole block (`chunks_exact`); `d` lies inside it.
        let d = unsafe { f16_at(p.add(offset_of!(block_q3_K, d))) };
        // SAFETY: the 12 bytes of `scales` lie inside the block (`src`,
        // borrowed for the whole kernel); bytes need no alignment.
        let sc = unsafe { &*p.add(offset_of!(block_q3_K, scales)).cast::<[u8; 12]>() };
        // SAFETY: the 32 bytes of `hmask` lie inside the block.
        let hm = unsafe { load32(p.add(offset_of!(block_q3_K, hmask))) };
        for half in 0..2 {
            // SAFETY: `half < 2`: bytes `32 * half..32 * half + 32` of the 64
            // of `qs`, inside the block.
            let qs = unsafe { load32(p.add(offset_of!(block_q3_K, qs) + 32 * half)) };
            for k in 0..4 {
                let low = _mm256_srl_epi16(qs, _mm_cvtsi32_si128(2 * k as i32));
                let low = _mm256_and_si256(low, m2);
                // the high bit, worth 4
                let h = _mm256_srl_epi16(hm, _mm_cvtsi32_si128((4 * half + k) as i32));
                let h = _mm256_slli_epi16::<2>(_mm256_and_si256(h, one));
                let code = _mm256_or_si256(low, h);
                let g = 8 * half + 2 * k;
                let d0 = _mm256_set1_ps(d * group_scale(sc, g) as f32);
                let d1 = _mm256_set1_ps(d * group_scale(sc, g + 1) as f32);
                // SAFETY: 32 of the block's 256 values (8 calls per block), `n`
                // in all.
                unsafe { w.i3x16x2_mul(code, minus_4_to_3, d0, d1) };
            }
        }
    }
    // SAFETY: every block's values have been given, `n` in all.
    unsafe { w.finish() };
});
