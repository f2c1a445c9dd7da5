//! The peers `bench --peers` (and the criterion benches) time on the same
//! inputs, threads and chunks as ours (cargo feature `peers`): candle-core's
//! `k_quants` (legacy, k-quant and plain types, f32 output), anamnesis's GGUF
//! dequantizer (every quantized type, f32/f16/bf16 output) and, when
//! `GDQ_GGML_LIB` names a `libggml-base.so` built from ggml's source, ggml's
//! own C dequantizers (`to_float` of its type traits: every type but f32, f32
//! output). Each is run over the pool in the chunks our decoder uses, calling
//! the peer's own slice-level entry point per chunk.

use std::mem::{align_of, size_of};

use crate::out::{as_bytes_mut, as_f32_mut, OutElem};
use crate::types::{GgmlType, OutType};
use anamnesis::{dequantize_gguf_blocks, Bf16Out, F16Out, F32Out, GgufType, OutputElement};
use candle_core::quantized::k_quants as ck;
use rayon::prelude::*;

/// Elements per parallel task, as in `cpu::dequantize`.
const CHUNK: usize = 1 << 16;

type Decode<O> = Box<dyn Fn(&[u8], &mut [O]) + Sync>;

pub struct Peer {
    pub name: &'static str,
}

pub const PEERS: &[Peer] = &[
    Peer {
        name: "candle-core",
    },
    Peer { name: "anamnesis" },
    Peer { name: "ggml" },
];

impl Peer {
    /// The peer's decoder of `ty` into `O`, where it has one.
    pub fn decoder<O: OutElem>(&self, ty: GgmlType) -> Option<Decode<O>> {
        match self.name {
            "candle-core" => candle::<O>(ty),
            "ggml" => ggml::decoder::<O>(ty),
            _ => anamnesis_decoder::<O>(ty),
        }
    }
}

fn candle<O: OutElem>(ty: GgmlType) -> Option<Decode<O>> {
    if O::OUT != OutType::F32 {
        return None;
    }
    use GgmlType::*;
    Some(match ty {
        F32 => candle_type::<f32, O>(),
        F16 => candle_type::<half::f16, O>(),
        BF16 => candle_type::<half::bf16, O>(),
        Q4_0 => candle_type::<ck::BlockQ4_0, O>(),
        Q4_1 => candle_type::<ck::BlockQ4_1, O>(),
        Q5_0 => candle_type::<ck::BlockQ5_0, O>(),
        Q5_1 => candle_type::<ck::BlockQ5_1, O>(),
        Q8_0 => candle_type::<ck::BlockQ8_0, O>(),
        Q2_K => candle_type::<ck::BlockQ2K, O>(),
        Q3_K => candle_type::<ck::BlockQ3K, O>(),
        Q4_K => candle_type::<ck::BlockQ4K, O>(),
        Q5_K => candle_type::<ck::BlockQ5K, O>(),
        Q6_K => candle_type::<ck::BlockQ6K, O>(),
        _ => return None,
    })
}

fn candle_type<B: ck::GgmlType + 'static, O: OutElem>() -> Decode<O> {
    Box::new(|src: &[u8], out: &mut [O]| {
        let (qk, bb) = (B::BLCK_SIZE, size_of::<B>());
        let out = as_f32_mut(out).expect("candle's decoders are asked for f32 only");
        out.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK / qk * bb))
            .for_each(|(y, x)| {
                assert_eq!(x.as_ptr() as usize % align_of::<B>(), 0);
                // SAFETY: candle's blocks are repr(C) layouts of ggml's blocks made
                // of integers and halves (any bits valid); alignment checked above.
                let blocks =
                    unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<B>(), x.len() / bb) };
                B::to_float(blocks, y);
            });
    })
}

fn anamnesis_type(ty: GgmlType) -> Option<GgufType> {
    use GgmlType::*;
    Some(match ty {
        Q4_0 => GgufType::Q4_0,
        Q4_1 => GgufType::Q4_1,
        Q5_0 => GgufType::Q5_0,
        Q5_1 => GgufType::Q5_1,
        Q8_0 => GgufType::Q8_0,
        Q1_0 => GgufType::Q1_0,
        Q2_0 => GgufType::Q2_0,
        Q2_K => GgufType::Q2_K,
        Q3_K => GgufType::Q3_K,
        Q4_K => GgufType::Q4_K,
        Q5_K => GgufType::Q5_K,
        Q6_K => GgufType::Q6_K,
        IQ2_XXS => GgufType::IQ2_XXS,
        IQ2_XS => GgufType::IQ2_XS,
        IQ2_S => GgufType::IQ2_S,
        IQ3_XXS => GgufType::IQ3_XXS,
        IQ3_S => GgufType::IQ3_S,
        IQ1_S => GgufType::IQ1_S,
        IQ1_M => GgufType::IQ1_M,
        IQ4_NL => GgufType::IQ4_NL,
        IQ4_XS => GgufType::IQ4_XS,
        TQ1_0 => GgufType::TQ1_0,
        TQ2_0 => GgufType::TQ2_0,
        MXFP4 => GgufType::MXFP4,
        NVFP4 => GgufType::NVFP4,
        F32 | F16 | BF16 | Q8_1 | Q8_K | I8 | I16 | I32 | I64 | F64 => return None,
    })
}

fn anamnesis_decoder<O: OutElem>(ty: GgmlType) -> Option<Decode<O>> {
    let t = anamnesis_type(ty)?;
    Some(match O::OUT {
        OutType::F32 => anamnesis_out::<F32Out, O>(ty, t),
        OutType::F16 => anamnesis_out::<F16Out, O>(ty, t),
        OutType::BF16 => anamnesis_out::<Bf16Out, O>(ty, t),
    })
}

/// anamnesis's streaming entry point (its allocation-free one) per chunk, each
/// block's values copied into place as they come.
fn anamnesis_out<E: OutputElement, O: OutElem>(ty: GgmlType, t: GgufType) -> Decode<O> {
    Box::new(move |src: &[u8], out: &mut [O]| {
        let (qk, bb) = (ty.block_elems(), ty.block_bytes());
        as_bytes_mut(out)
            .par_chunks_mut(CHUNK * E::BYTES)
            .zip(src.par_chunks(CHUNK / qk * bb))
            .for_each(|(y, x)| {
                let mut at = 0;
                dequantize_gguf_blocks::<E, _>(x, t, x.len() / bb * qk, |b| {
                    y[at..at + b.len()].copy_from_slice(b);
                    at += b.len();
                    Ok(())
                })
                .expect("anamnesis decodes valid blocks");
            });
    })
}

/// ggml's C dequantizers, from a shared library loaded at run time: ggml is
/// not a dependency, and its source is built by hand, never by this crate.
mod ggml {
    use std::ffi::{c_char, c_void, CString};
    use std::sync::OnceLock;

    use rayon::prelude::*;

    use super::{Decode, CHUNK};
    use crate::out::{as_f32_mut, OutElem};
    use crate::types::GgmlType;

    /// `ggml_to_float_t`: `k` elements of blocks at `x` into `y`.
    type ToFloat = unsafe extern "C" fn(x: *const c_void, y: *mut f32, k: i64);

    /// `struct ggml_type_traits` (ggml 0.21, include/ggml.h).
    #[repr(C)]
    struct TypeTraits {
        type_name: *const c_char,
        blck_size: i64,
        blck_size_interleave: i64,
        type_size: usize,
        is_quantized: bool,
        to_float: Option<ToFloat>,
        from_float_ref: *const c_void,
    }

    /// `ggml_get_type_traits`.
    type GetTraits = unsafe extern "C" fn(ty: u32) -> *const TypeTraits;

    /// ggml's `GGML_TYPE_COUNT` in that version: its lookup does not check ids.
    const TYPE_COUNT: u32 = 43;

    /// The library named by `GDQ_GGML_LIB`, opened once (never closed).
    fn get_traits() -> Option<GetTraits> {
        static LIB: OnceLock<Option<GetTraits>> = OnceLock::new();
        *LIB.get_or_init(|| {
            let path = CString::new(std::env::var("GDQ_GGML_LIB").ok()?).ok()?;
            // SAFETY: dlopen and dlsym take NUL-terminated strings; the handle
            // is kept open for the life of the process, so the symbol stays
            // valid. The library is one the user built from ggml's source.
            unsafe {
                let lib = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
                if lib.is_null() {
                    return None;
                }
                let sym = libc::dlsym(lib, c"ggml_get_type_traits".as_ptr());
                (!sym.is_null()).then(|| std::mem::transmute::<*mut c_void, GetTraits>(sym))
            }
        })
    }

    /// ggml's decoder of `ty` (f32 output only), checked against our geometry.
    pub fn decoder<O: OutElem>(ty: GgmlType) -> Option<Decode<O>> {
        if O::OUT != crate::types::OutType::F32 || ty.id() >= TYPE_COUNT {
            return None;
        }
        // SAFETY: the id is below ggml's type count, and the traits are a
        // static table of the library.
        let traits = unsafe { get_traits()?(ty.id()).as_ref()? };
        let geometry = (traits.blck_size as usize, traits.type_size);
        if geometry != (ty.block_elems(), ty.block_bytes()) {
            return None;
        }
        let to_float = traits.to_float?;
        Some(Box::new(move |src: &[u8], out: &mut [O]| {
            let out = as_f32_mut(out).expect("ggml is asked for f32 only");
            let (qk, bb) = (ty.block_elems(), ty.block_bytes());
            out.par_chunks_mut(CHUNK)
                .zip(src.par_chunks(CHUNK / qk * bb))
                .for_each(|(y, x)| {
                    assert_eq!(x.len() / bb * qk, y.len());
                    // SAFETY: `x` holds whole blocks of `ty` (ggml's geometry
                    // checked above) decoding to exactly `y.len()` elements.
                    unsafe { to_float(x.as_ptr().cast(), y.as_mut_ptr(), y.len() as i64) }
                });
        }))
    }
}
