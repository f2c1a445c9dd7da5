//! The fast path's kernels: the formats decoded with SIMD, chosen at run time.
//!
//! One module per format, named as its scalar reference (`fast/q4_k.rs` beside
//! `cpu/q4_k.rs`), written once over `x86::Isa` and compiled for each x86-64
//! level: AVX2 + F16C, and AVX-512, which writes whole cache lines and applies
//! sign bits from mask registers (`avx512.rs`). A kernel has the scalar
//! decoder's signature (whole blocks in, their elements out) and must produce
//! the same bits: it does ggml's arithmetic in ggml's order, lane-wise, and
//! converts to f16/bf16 by rounding to nearest even exactly as `half` does.
//! Types without a kernel for the chosen level fall back to the scalar decoder.
//!
//! Large outputs are written with non-temporal stores: a decoder is bound by
//! memory traffic, and ordinary stores to lines not in cache read each line
//! before writing it. The kernels issue them themselves (interleaved with the
//! decoding, which keeps the memory busy); the scalar decoders, and kernels
//! writing to outputs not aligned to 16 bytes, go through a small
//! cache-resident stage that is then streamed out.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{DecodeFn, OutElem};
use crate::types::GgmlType;

/// The kernel modules (x86-64 only for now): the building blocks, then one
/// per file of the list of formats (`src/formats.rs`), each implementing
/// [`Simd`] for the formats of that file.
#[cfg(target_arch = "x86_64")]
mod avx512;
mod fill;
#[cfg(target_arch = "x86_64")]
mod x86;

macro_rules! kernel_modules {
    ($( $file:ident { $( $ty:ident => $name:ident : $parts:literal $(/ $tail:ident)? ),+ } )*) => {
        $( #[cfg(target_arch = "x86_64")] mod $file; )*

        /// The SIMD kernels of every listed type: a type without them does
        /// not compile.
        #[cfg(target_arch = "x86_64")]
        fn x86_kernel<O: OutElem>(ty: GgmlType, level: Level, nt: bool) -> Option<DecodeFn<O>> {
            match ty {
                $( $( GgmlType::$ty => Some(level_kernel::<super::$file::$ty, O>(level, nt)?), )+ )*
                _ => None,
            }
        }
    };
}
crate::for_each_format!(kernel_modules);

/// An instruction-set level the fast path can run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The scalar reference decoders (threaded), everywhere.
    Scalar,
    /// x86-64 AVX2 with F16C.
    Avx2,
    /// x86-64 AVX-512 (F, BW, VL, DQ) with AVX2 and F16C.
    Avx512,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 3] = [Level::Scalar, Level::Avx2, Level::Avx512];

    /// The level's name (`scalar`, `avx2`, `avx512`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    /// The level named `s` (as [`Level::name`] says it).
    pub fn from_name(s: &str) -> Option<Level> {
        Self::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(s))
    }

    /// Whether this CPU can run the level.
    pub fn is_available(self) -> bool {
        match self {
            Level::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c"),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                Level::Avx2.is_available()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512dq")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Level::Avx2 | Level::Avx512 => false,
        }
    }

    /// The levels this CPU can run, lowest first.
    pub fn available() -> Vec<Level> {
        Self::ALL.into_iter().filter(|l| l.is_available()).collect()
    }

    /// The level [`super::dequantize`] uses: the highest available, capped by
    /// the environment variable `GDQ_SIMD` (a level's name) when set.
    pub fn best() -> Level {
        // Not a `OnceLock`: a child forked while another thread of its parent
        // ran the initializer would wait for that thread forever. Working the
        // level out twice is harmless: every thread gets the same answer.
        static BEST: AtomicUsize = AtomicUsize::new(usize::MAX);
        if let Some(&level) = Level::ALL.get(BEST.load(Ordering::Relaxed)) {
            return level;
        }
        let cap = std::env::var("GDQ_SIMD")
            .ok()
            .and_then(|s| Level::from_name(&s));
        let level = Level::available()
            .into_iter()
            .filter(|&l| cap.is_none_or(|c| l <= c))
            .max()
            .unwrap_or(Level::Scalar);
        let index = Level::ALL.iter().position(|&l| l == level);
        BEST.store(index.unwrap_or(usize::MAX), Ordering::Relaxed);
        level
    }

    /// Whether this level writes large outputs with non-temporal stores.
    fn streams(self) -> bool {
        self != Level::Scalar
    }
}

/// Outputs at least this large (bytes, per call) are written with non-temporal
/// stores at the SIMD levels: they cannot stay in cache, so reading their lines
/// before writing them is waste.
pub const STREAM_MIN_BYTES: usize = 8 << 20;

/// How a chunk of output gets written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Write {
    /// Ordinary stores.
    Cached,
    /// The kernel's own non-temporal stores; a fence after each chunk.
    Streamed,
    /// Ordinary stores to a cache-resident stage, streamed out ([`staged`]).
    Staged,
}

/// The decoder of `ty` at `level` and how it writes: a SIMD kernel where there
/// is one, else the scalar decoder `scalar`. With `streaming`, the output is
/// written with non-temporal stores: the kernel's own where `out` is 16-byte
/// aligned (every chunk then is: chunks are whole multiples of 16 bytes), else
/// through a stage. `level` must be available.
pub(super) fn choose_writer<O: OutElem>(
    ty: GgmlType,
    level: Level,
    streaming: bool,
    out: *const O,
    scalar: DecodeFn<O>,
) -> (DecodeFn<O>, Write) {
    choose(level, streaming, out, scalar, |nt| {
        kernel::<O>(ty, level, nt)
    })
}

/// [`choose_writer`] for the fill limit: [`fill::Fill`]'s kernels, which
/// read the input and write the output as the decoders do, decoding nothing.
pub(super) fn choose_fill<O: OutElem>(
    level: Level,
    streaming: bool,
    out: *const O,
) -> (DecodeFn<O>, Write) {
    choose(level, streaming, out, fill::scalar::<O>, |nt| {
        #[cfg(target_arch = "x86_64")]
        return level_kernel::<fill::Fill, O>(level, nt);
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = nt;
            None
        }
    })
}

fn choose<O: OutElem>(
    level: Level,
    streaming: bool,
    out: *const O,
    scalar: DecodeFn<O>,
    kernel: impl Fn(bool) -> Option<DecodeFn<O>>,
) -> (DecodeFn<O>, Write) {
    debug_assert!(level.is_available());
    let streaming = streaming && level.streams();
    let direct = streaming && (out as usize).is_multiple_of(16);
    match kernel(direct) {
        Some(f) if direct => (f, Write::Streamed),
        Some(f) if streaming => (f, Write::Staged),
        Some(f) => (f, Write::Cached),
        None if streaming => (scalar, Write::Staged),
        None => (scalar, Write::Cached),
    }
}

/// Decodes one chunk as [`choose_writer`] said.
pub(super) fn run<O: OutElem>(
    level: Level,
    (f, write): (DecodeFn<O>, Write),
    ty: GgmlType,
    src: &[u8],
    out: &mut [O],
) {
    match write {
        Write::Cached => f(src, out),
        Write::Streamed => {
            f(src, out);
            stream_fence(level);
        }
        Write::Staged => staged(level, f, ty, src, out),
    }
}

/// The kernel of `ty` at `level`, with non-temporal stores when `nt`, or `None`
/// where there is none.
fn kernel<O: OutElem>(ty: GgmlType, level: Level, nt: bool) -> Option<DecodeFn<O>> {
    #[cfg(target_arch = "x86_64")]
    return x86_kernel::<O>(ty, level, nt);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (ty, level, nt);
        None
    }
}

/// A format's SIMD kernels, one per x86-64 level, each with the scalar
/// decoder's contract (whole blocks in, exactly their elements out, the same
/// bits) and written once with [`x86::kernel!`]. `NT` writes the output with
/// non-temporal stores.
///
/// # Safety
/// A caller must have checked that the CPU has the level's features, and with
/// `NT`, that `out` is 16-byte aligned.
#[cfg(target_arch = "x86_64")]
trait Simd {
    /// AVX2 with F16C.
    unsafe fn avx2<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]);
    /// AVX-512 F, BW, VL and DQ, with AVX2 and F16C.
    unsafe fn avx512<O: OutElem, const NT: bool>(src: &[u8], out: &mut [O]);
}

/// `F`'s kernel at `level`, wrapped as a safe function. [`kernel`] hands it
/// out only at an available level ([`choose_writer`]'s contract), and with
/// `nt` only for a 16-byte aligned output, which [`choose_writer`] checks.
#[cfg(target_arch = "x86_64")]
fn level_kernel<F: Simd, O: OutElem>(level: Level, nt: bool) -> Option<DecodeFn<O>> {
    let f: DecodeFn<O> = match (level, nt) {
        (Level::Scalar, _) => return None,
        // SAFETY: as said above, the level is available.
        (Level::Avx2, false) => |src, out| unsafe { F::avx2::<O, false>(src, out) },
        // SAFETY: as said above, the level is available and the output is
        // 16-byte aligned.
        (Level::Avx2, true) => |src, out| unsafe { F::avx2::<O, true>(src, out) },
        // SAFETY: as said above, the level is available.
        (Level::Avx512, false) => |src, out| unsafe { F::avx512::<O, false>(src, out) },
        // SAFETY: as said above, the level is available and the output is
        // 16-byte aligned.
        (Level::Avx512, true) => |src, out| unsafe { F::avx512::<O, true>(src, out) },
    };
    Some(f)
}

/// Elements of output decoded at a time by [`staged`] before being streamed out:
/// small enough to stay in L1, large enough to amortize the call.
const STAGE_ELEMS: usize = 2048;

#[repr(C, align(64))]
struct Stage<O>([O; STAGE_ELEMS]);

/// Decodes `src` into `out` through a cache-resident stage, then copies each
/// stage to `out` with non-temporal stores. `out` may have any alignment.
fn staged<O: OutElem>(level: Level, f: DecodeFn<O>, ty: GgmlType, src: &[u8], out: &mut [O]) {
    if !level.streams() {
        return f(src, out);
    }
    let (qk, bb) = (ty.block_elems(), ty.block_bytes());
    let blocks = (STAGE_ELEMS / qk).max(1);
    let mut stage = Stage([O::default(); STAGE_ELEMS]);
    for (x, y) in src.chunks(blocks * bb).zip(out.chunks_mut(blocks * qk)) {
        let tmp = &mut stage.0[..y.len()];
        f(x, tmp);
        stream_copy(level, tmp, y);
    }
    stream_fence(level);
}

/// `dst.copy_from_slice(src)` with non-temporal stores where the level has them.
fn stream_copy<O: OutElem>(level: Level, src: &[O], dst: &mut [O]) {
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the levels are only used once found available, and both
        // have AVX2 and F16C, `stream_copy`'s features.
        Level::Avx2 | Level::Avx512 => unsafe { x86::stream_copy(src, dst) },
        _ => dst.copy_from_slice(src),
    }
}

/// Orders this thread's non-temporal stores before whatever it does next (the
/// thread pool's hand-over of the results to the caller).
fn stream_fence(level: Level) {
    #[cfg(target_arch = "x86_64")]
    if level != Level::Scalar {
        // SAFETY: sfence is part of SSE, which every x86-64 CPU has.
        unsafe { std::arch::x86_64::_mm_sfence() };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = level;
}

#[cfg(test)]
mod tests {
    use half::{bf16, f16};

    use super::*;

    /// Every listed type has a kernel at every SIMD level, with and without
    /// non-temporal stores, for every output type (whether or not this CPU
    /// runs the level: the table is the same everywhere).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn every_type_has_a_kernel_at_every_level() {
        for ty in GgmlType::dequantizable() {
            for level in [Level::Avx2, Level::Avx512] {
                for nt in [false, true] {
                    let has = [
                        kernel::<f32>(ty, level, nt).is_some(),
                        kernel::<f16>(ty, level, nt).is_some(),
                        kernel::<bf16>(ty, level, nt).is_some(),
                    ];
                    assert_eq!(has, [true; 3], "{ty} at {} (nt {nt})", level.name());
                }
            }
            assert!(kernel::<f32>(ty, Level::Scalar, false).is_none());
        }
        for ty in [GgmlType::Q8_1, GgmlType::Q8_K, GgmlType::I8] {
            assert!(kernel::<f32>(ty, Level::Avx2, false).is_none(), "{ty}");
        }
    }
}
