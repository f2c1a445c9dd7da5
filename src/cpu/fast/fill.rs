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

    use super::super::x86::{kernel, load32, Isa, Out};

    kernel!(fast::fill::Fill, |src, out| {
        // the input, read once: 32 bytes at a time, OR-ed together
        let mut acc = _mm256_setzero_si256();
        let whole_in = src.len() / 32 * 32;
        for i in (0..whole_in).step_by(32) {
            // SAFETY: `i + 32 <= whole_in <= src.len()`: 32 bytes of `src`.
            acc = _mm256_or_si256(acc, unsafe { load32(src.as_ptr().add(i)) });
        }
        let tail = src[whole_in..].iter().fold(0u8, |a, &b| a | b);
        let acc = _mm256_or_si256(acc, _mm256_set1_epi8(tail as i8));
        // values that depend on the input, so that none of it is skipped
        let v = _mm256_cvtepi32_ps(_mm256_and_si256(acc, _mm256_set1_epi32(0xff)));
        let whole = out.len() / 32 * 32;
        let (body, rest) = out.split_at_mut(whole);
        // SAFETY: `S::out` needs the kernel's features and, with `NT`, an
        // aligned output (`body` starts where `out` does): the kernel's own
        // contract.
        let mut w = unsafe { S::out::<O, NT>(body, whole) };
        for _ in 0..whole / 32 {
            // SAFETY: `whole / 32` calls of 32 values: the `whole` promised.
            unsafe { w.f32x32([v; 4]) };
        }
        // SAFETY: all `whole` values have been given.
        unsafe { w.finish() };
        rest.fill(O::from_f32(_mm256_cvtss_f32(v)));
    });
}
