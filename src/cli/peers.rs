//! The peer crates `bench --peers` times on the same inputs, threads and chunks
//! as ours (cargo feature `peers`): candle-core's `k_quants` (legacy, k-quant
//! and plain types, f32 output) and anamnesis's GGUF dequantizer (every
//! quantized type, f32/f16/bf16 output). Each is run over the pool in the chunks
//! our decoder uses, calling the crate's own slice-level entry point per chunk.

use std::mem::{align_of, size_of};

use anamnesis::{dequantize_gguf_blocks, Bf16Out, F16Out, F32Out, GgufType, OutputElement};
use candle_core::quantized::k_quants as ck;
use gguf_dequant::cpu::OutElem;
use gguf_dequant::{GgmlType, OutType};
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
];

impl Peer {
    /// The peer's decoder of `ty` into `O`, where it has one.
    pub fn decoder<O: OutElem>(&self, ty: GgmlType) -> Option<Decode<O>> {
        match self.name {
            "candle-core" => candle::<O>(ty),
            _ => anamnesis_decoder::<O>(ty),
        }
    }
}

/// The output as the bytes (or f32s) the peers write.
fn out_bytes<O: OutElem>(out: &mut [O]) -> &mut [u8] {
    let len = std::mem::size_of_val(out);
    // SAFETY: the output types are plain 2- or 4-byte values; any bytes are valid.
    unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast(), len) }
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
        let bytes = out_bytes(out);
        // SAFETY: O is f32 here (checked by the caller); the bytes came from a
        // slice of f32.
        let out: &mut [f32] =
            unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast(), bytes.len() / 4) };
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
        out_bytes(out)
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
