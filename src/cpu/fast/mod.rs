//! The fast path's kernels: the formats decoded with SIMD, chosen at run time.
//!
//! One module per format, named as its scalar reference (`fast/q4_k.rs` beside
//! `cpu/q4_k.rs`). A kernel has the scalar decoder's signature (whole blocks in,
//! their elements out) and must produce the same bits: it does ggml's
//! arithmetic in ggml's order, lane-wise, and converts to f16/bf16 by rounding
//! to nearest even exactly as `half` does. Types without a kernel for the chosen
//! level fall back to the scalar decoder.
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
    x86, plain, q4_0, q4_1, q5_0, q5_1, q8_0, q1_0, q2_0, q2_k, q3_k, q4_k, q5_k, q6_k, iq2_xxs,
    iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m, iq4_nl, iq4_xs, tq1_0, tq2_0, mxfp4, nvfp4,
);

/// An instruction-set level the fast path can run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The scalar reference decoders (threaded), everywhere.
    Scalar,
    /// x86-64 AVX2 with F16C.
    Avx2,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 2] = [Level::Scalar, Level::Avx2];

    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
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
            #[cfg(not(target_arch = "x86_64"))]
            Level::Avx2 => false,
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
                .filter(|&l| cap.map_or(true, |c| l <= c))
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
    let direct = streaming && out as usize % 16 == 0;
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
        #[cfg(not(target_arch = "x86_64"))]
        Level::Avx2 => {
            let _ = (ty, nt);
            None
        }
    }
}

/// The AVX2 kernels, wrapped as safe functions: [`kernel`] hands them out only
/// when the CPU has been found to support AVX2 and F16C. Their non-temporal
/// variants also need an output aligned to 16 bytes, which [`plan`] checks.
#[cfg(target_arch = "x86_64")]
macro_rules! avx2_kernels {
    ($($ty:ident => $module:ident :: $kernel:ident),* $(,)?) => {
        fn avx2_kernel<O: OutElem>(ty: GgmlType, nt: bool) -> Option<DecodeFn<O>> {
            // SAFETY (every arm): the caller checked that the CPU has AVX2 and
            // F16C, and for `nt` that the output is 16-byte aligned.
            match (ty, nt) {
                $(
                    (GgmlType::$ty, false) => Some(|src: &[u8], out: &mut [O]| unsafe {
                        $module::$kernel::<O, false>(src, out)
                    }),
                    (GgmlType::$ty, true) => Some(|src: &[u8], out: &mut [O]| unsafe {
                        $module::$kernel::<O, true>(src, out)
                    }),
                )*
                _ => None,
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
avx2_kernels! {
    F32 => plain::f32_avx2,
    F16 => plain::f16_avx2,
    BF16 => plain::bf16_avx2,
    Q4_0 => q4_0::avx2,
    Q4_1 => q4_1::avx2,
    Q5_0 => q5_0::avx2,
    Q5_1 => q5_1::avx2,
    Q8_0 => q8_0::avx2,
    Q1_0 => q1_0::avx2,
    Q2_0 => q2_0::avx2,
    Q2_K => q2_k::avx2,
    Q3_K => q3_k::avx2,
    Q4_K => q4_k::avx2,
    Q5_K => q5_k::avx2,
    Q6_K => q6_k::avx2,
    IQ2_XXS => iq2_xxs::avx2,
    IQ2_XS => iq2_xs::avx2,
    IQ2_S => iq2_s::avx2,
    IQ3_XXS => iq3_xxs::avx2,
    IQ3_S => iq3_s::avx2,
    IQ1_S => iq1_s::avx2,
    IQ1_M => iq1_m::avx2,
    IQ4_NL => iq4_nl::avx2,
    IQ4_XS => iq4_xs::avx2,
    TQ1_0 => tq1_0::avx2,
    TQ2_0 => tq2_0::avx2,
    MXFP4 => mxfp4::avx2,
    NVFP4 => nvfp4::avx2,
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
        // SAFETY: Avx2 is only used once found available.
        Level::Avx2 => unsafe { x86::stream_copy(src, dst) },
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
