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

use super::{DecodeFn, OutElem};
use crate::types::GgmlType;

/// The per-format kernel modules, x86-64 only for now.
macro_rules! x86_modules {
    ($($m:ident),* $(,)?) => { $( #[cfg(target_arch = "x86_64")] mod $m; )* };
}
x86_modules!(
    x86, avx512, plain, q4_0, q4_1, q5_0, q5_1, q8_0, q1_0, q2_0, q2_k, q3_k, q4_k, q5_k, q6_k,
    iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m, iq4_nl, iq4_xs, tq1_0, tq2_0, mxfp4,
    nvfp4,
);

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

    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

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
    /// the environment variable `GGUF_DEQUANT_SIMD` (a level's name) when set.
    pub fn best() -> Level {
        static BEST: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            let cap = std::env::var("GGUF_DEQUANT_SIMD")
                .ok()
                .and_then(|s| Level::from_name(&s));
            Level::available()
                .into_iter()
                .filter(|&l| cap.is_none_or(|c| l <= c))
                .max()
                .unwrap_or(Level::Scalar)
        })
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
pub(super) fn plan<O: OutElem>(
    ty: GgmlType,
    level: Level,
    streaming: bool,
    out: *const O,
    scalar: DecodeFn<O>,
) -> (DecodeFn<O>, Write) {
    debug_assert!(level.is_available());
    let streaming = streaming && level.streams();
    let direct = streaming && (out as usize).is_multiple_of(16);
    match kernel::<O>(ty, level, direct) {
        Some(f) if direct => (f, Write::Streamed),
        Some(f) if streaming => (f, Write::Staged),
        Some(f) => (f, Write::Cached),
        None if streaming => (scalar, Write::Staged),
        None => (scalar, Write::Cached),
    }
}

/// Decodes one chunk as [`plan`] said.
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
    match level {
        Level::Scalar => None,
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => avx2_kernel::<O>(ty, nt),
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => avx512_kernel::<O>(ty, nt),
        #[cfg(not(target_arch = "x86_64"))]
        Level::Avx2 | Level::Avx512 => {
            let _ = (ty, nt);
            None
        }
    }
}

/// The kernels of one level, wrapped as safe functions: `$name(ty, nt)` is
/// `$module::$entry::<O, nt>` for the type's module. [`kernel`] hands them
/// out only when the CPU has been found to support the level's features.
/// Their non-temporal variants also need an output aligned to 16 bytes, which
/// [`plan`] checks.
#[cfg(target_arch = "x86_64")]
macro_rules! level_kernels {
    ($name:ident, $entry:ident, $($ty:ident => $module:path),* $(,)?) => {
        fn $name<O: OutElem>(ty: GgmlType, nt: bool) -> Option<DecodeFn<O>> {
            // SAFETY (every arm): the caller checked that the CPU has the
            // level's features, and for `nt` that the output is 16-byte aligned.
            match (ty, nt) {
                $(
                    (GgmlType::$ty, false) => Some(|src: &[u8], out: &mut [O]| unsafe {
                        { use $module as m; m::$entry::<O, false>(src, out) }
                    }),
                    (GgmlType::$ty, true) => Some(|src: &[u8], out: &mut [O]| unsafe {
                        { use $module as m; m::$entry::<O, true>(src, out) }
                    }),
                )*
                _ => None,
            }
        }
    };
}

/// Every type has a kernel, at each x86-64 level: its module, named as the
/// scalar reference, holds one entry point per level.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_kernels {
    ($($ty:ident => $module:path),* $(,)?) => {
        level_kernels!(avx2_kernel, avx2, $($ty => $module),*);
        level_kernels!(avx512_kernel, avx512, $($ty => $module),*);
    };
}

#[cfg(target_arch = "x86_64")]
x86_kernels! {
    F32 => plain::f32,
    F16 => plain::f16,
    BF16 => plain::bf16,
    Q4_0 => q4_0,
    Q4_1 => q4_1,
    Q5_0 => q5_0,
    Q5_1 => q5_1,
    Q8_0 => q8_0,
    Q1_0 => q1_0,
    Q2_0 => q2_0,
    Q2_K => q2_k,
    Q3_K => q3_k,
    Q4_K => q4_k,
    Q5_K => q5_k,
    Q6_K => q6_k,
    IQ2_XXS => iq2_xxs,
    IQ2_XS => iq2_xs,
    IQ2_S => iq2_s,
    IQ3_XXS => iq3_xxs,
    IQ3_S => iq3_s,
    IQ1_S => iq1_s,
    IQ1_M => iq1_m,
    IQ4_NL => iq4_nl,
    IQ4_XS => iq4_xs,
    TQ1_0 => tq1_0,
    TQ2_0 => tq2_0,
    MXFP4 => mxfp4,
    NVFP4 => nvfp4,
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
        // have AVX2.
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
