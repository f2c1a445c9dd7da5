//! The fill limit: what a decoder costs at the least, measured by benchmarks
//! beside the decoders (`cpu::fill_limit`). Its kernels read the input once
//! and write the output through the same writers, with the same stores, as
//! the decoders do at each level, and decode nothing: a decoder's time over
//! this one's says how far it is from what memory allows.

use crate::cpu::OutElem;

/// The fill "format": input bytes in, as many outputs as the caller gives.
pub struct Fill;

/// The scalar level's fill: reads every input byte, writes every output.
pub fn scalar<O: OutElem>(src: &[u8], out: &mut [O]) {
    let x = src.iter().fold(0u8, |a, &b| a | b);
    out.fill(O::from_f32(x as f32));
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::x86::{kernel, load32, prefetch_ahead, Isa, Out};
    use crate::types::OutType;

    kernel!(fast::fill::Fill, |src, out| {
        // The input is read as the decoders read it: 32 bytes at a time,
        // interleaved with the output at the rate the output consumes it,
        // prefetched ahead when streaming; the values written depend on it.
        // Nothing is computed per value: 16-bit outputs are given their
        // bits, not f32 lanes to round (rounding would make the fill itself
        // compute-bound on AVX2), and the loads per group of 32 values are
        // stepped without a division (one per group did the same).
        let loads = src.len() / 32;
        let whole = out.len() / 32 * 32;
        let groups = whole / 32;
        let (body, rest) = out.split_at_mut(whole);
        // SAFETY: `S::out` needs the kernel's features and, with `NT`, an
        // aligned output (`body` starts where `out` does): the kernel's own
        // contract.
        let mut w = unsafe { S::out::<O, NT>(body, whole) };
        let (mut acc, mut at) = (_mm256_setzero_si256(), 0);
        // group `g` ends after load `(g + 1) * loads / groups` (rounded
        // down): `per` loads, plus one each time the remainders add up
        let (per, extra) = (loads / groups.max(1), loads % groups.max(1));
        let mut owed = 0;
        for _ in 0..groups {
            let mut n = per;
            owed += extra;
            if owed >= groups {
                owed -= groups;
                n += 1;
            }
            for _ in 0..n {
                if NT {
                    prefetch_ahead(src.as_ptr().wrapping_add(at));
                }
                // SAFETY: `n` loads per group, `loads` in all over the
                // groups: `at + 32 <= 32 * loads <= src.len()`.
                acc = _mm256_or_si256(acc, unsafe { load32(src.as_ptr().add(at)) });
                at += 32;
            }
            if O::OUT == OutType::F32 {
                let v = _mm256_cvtepi32_ps(_mm256_and_si256(acc, _mm256_set1_epi32(0xff)));
                // SAFETY: `groups` calls of 32 values: the `whole` promised.
                unsafe { w.f32x32([v; 4]) };
            } else {
                // small positive numbers (or zeros) in f16 and bf16 alike
                let bits = _mm256_and_si256(acc, _mm256_set1_epi16(0xff));
                // SAFETY: as above; a 16-bit output.
                unsafe { w.bits16x32(bits, bits) };
            }
        }
        debug_assert!(groups == 0 || at == 32 * loads);
        // SAFETY: all `whole` values have been given.
        unsafe { w.finish() };
        let tail = src[at.min(src.len())..].iter().fold(0u8, |a, &b| a | b);
        rest.fill(O::from_f32(tail as f32));
    });
}
