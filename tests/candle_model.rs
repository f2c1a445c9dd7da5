//! A real engine's model code on weights this crate decoded: a tiny Gemma 3 of
//! random weights, written as a GGUF file here, run by candle-transformers'
//! `gemma3` (greedy decoding, through the code the `candle_generate` example
//! runs on a real model).
//! - Stored in types candle also decodes: the logits are the same bits at every
//!   step as on candle's own decoding of the file, in f32 and in bf16.
//! - Stored in types candle cannot read: the model runs to finite logits, on
//!   weights that are ggml's values (the CPU reference), not zeros.

mod common;
#[path = "common/gemma3.rs"]
mod gemma3;

use std::io::Cursor;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device};
use common::assert_bits_eq;
use gguf_dequant::cpu;
use gguf_dequant::gguf::{Array, GgufFile, GgufWriter, Value};
use gguf_dequant::synth::{random_blocks, Rng};
use gguf_dequant::GgmlType::{self, *};

const HIDDEN: u64 = 256;
const LAYERS: usize = 2;
const HEADS: u64 = 4;
const KV_HEADS: u64 = 1;
const HEAD_DIM: u64 = 64;
const FFN: u64 = 512;
const VOCAB: u64 = 512;
/// Longer than the sliding window (4), so that the windowed layer (layer 0)
/// masks and its rotating cache wraps.
const PROMPT: [u32; 6] = [2, 17, 300, 45, 511, 128];
const STEPS: usize = 5;

/// The matrices of a layer: name and ggml `ne` (`[in, out]`).
const MATRICES: [(&str, [u64; 2]); 7] = [
    ("attn_q", [HIDDEN, HEADS * HEAD_DIM]),
    ("attn_k", [HIDDEN, KV_HEADS * HEAD_DIM]),
    ("attn_v", [HIDDEN, KV_HEADS * HEAD_DIM]),
    ("attn_output", [HEADS * HEAD_DIM, HIDDEN]),
    ("ffn_gate", [HIDDEN, FFN]),
    ("ffn_up", [HIDDEN, FFN]),
    ("ffn_down", [FFN, HIDDEN]),
];
const NORMS: [(&str, u64); 6] = [
    ("attn_norm", HIDDEN),
    ("attn_q_norm", HEAD_DIM),
    ("attn_k_norm", HEAD_DIM),
    ("post_attention_norm", HIDDEN),
    ("ffn_norm", HIDDEN),
    ("post_ffw_norm", HIDDEN),
];

/// The storage types of token_embd, then of each layer's matrices in order.
type Types = [GgmlType; 1 + LAYERS * MATRICES.len()];

/// Every type candle's GGUF reader decodes that this crate does (not q8_1, q8_K).
const CANDLE_TYPES: Types = [
    Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, F16, BF16, F32, Q8_0, Q4_K,
];
/// Every type this crate decodes that candle's GGUF reader does not.
const OTHER_TYPES: Types = [
    IQ4_NL, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M, IQ4_XS, TQ1_0, TQ2_0, MXFP4,
    NVFP4, Q1_0, Q2_0,
];

/// A Gemma 3 GGUF file (llama.cpp's names and metadata keys) of random
/// weights, the matrices in `types`. Norm weights are near 1, as llama.cpp
/// stores them (`1 + w`).
fn model_file(types: &Types) -> Vec<u8> {
    let mut w = GgufWriter::new();
    let kvs = [
        ("general.architecture", Value::String("gemma3".into())),
        ("gemma3.context_length", Value::U32(64)),
        ("gemma3.embedding_length", Value::U32(HIDDEN as u32)),
        ("gemma3.block_count", Value::U32(LAYERS as u32)),
        ("gemma3.feed_forward_length", Value::U32(FFN as u32)),
        ("gemma3.attention.head_count", Value::U32(HEADS as u32)),
        (
            "gemma3.attention.head_count_kv",
            Value::U32(KV_HEADS as u32),
        ),
        ("gemma3.attention.key_length", Value::U32(HEAD_DIM as u32)),
        ("gemma3.attention.value_length", Value::U32(HEAD_DIM as u32)),
        ("gemma3.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ("gemma3.rope.freq_base", Value::F32(1e6)),
        ("gemma3.attention.sliding_window", Value::U32(4)),
        // Layer 0 windowed, layer 1 global.
        (
            "gemma3.attention.sliding_window_pattern",
            Array::from(vec![true, false]).into(),
        ),
    ];
    for (k, v) in kvs {
        w.add_kv(k, v).unwrap();
    }
    let mut rng = Rng(13);
    let mut types = types.iter();
    let mut matrix = |w: &mut GgufWriter, name: String, ne: [u64; 2], rng: &mut Rng| {
        let ty = *types.next().unwrap();
        let blocks = (ne[0] * ne[1]) as usize / ty.block_elems();
        w.add_tensor(name, ty, &ne, random_blocks(ty, blocks, rng))
            .unwrap();
    };
    let norm = |w: &mut GgufWriter, name: String, n: u64, rng: &mut Rng| {
        let v: Vec<u8> = (0..n)
            .flat_map(|_| (1.0 + (rng.below(2001) as f32 - 1000.0) / 4000.0).to_le_bytes())
            .collect();
        w.add_tensor(name, F32, &[n], v).unwrap();
    };
    matrix(
        &mut w,
        "token_embd.weight".into(),
        [HIDDEN, VOCAB],
        &mut rng,
    );
    norm(&mut w, "output_norm.weight".into(), HIDDEN, &mut rng);
    for l in 0..LAYERS {
        for (name, ne) in MATRICES {
            matrix(&mut w, format!("blk.{l}.{name}.weight"), ne, &mut rng);
        }
        for (name, n) in NORMS {
            norm(&mut w, format!("blk.{l}.{name}.weight"), n, &mut rng);
        }
    }
    w.to_bytes()
}

/// Greedy decoding of the prompt by candle-transformers' gemma3 on
/// GGUF-named weights.
fn run(file: &GgufFile, weights: gemma3::WeightMap, dtype: DType) -> gemma3::Run {
    let cfg = gemma3::config(file).unwrap();
    assert_eq!((cfg.sliding_window, cfg.sliding_window_pattern), (4, 2));
    let hf = gemma3::to_hf(weights).unwrap();
    let mut model = gemma3::model(&cfg, hf, dtype, &Device::Cpu).unwrap();
    let run = gemma3::generate(|x, pos| model.forward(x, pos), &PROMPT, STEPS, &[], None).unwrap();
    assert_eq!(run.tokens.len(), STEPS);
    for (step, logits) in run.logits.iter().enumerate() {
        assert_eq!(logits.len(), VOCAB as usize);
        assert!(
            logits.iter().all(|x| x.is_finite()),
            "{dtype:?}: step {step}: logits not finite"
        );
        // Not a degenerate model (equal logits would compare equal whatever the weights).
        let (lo, hi) = logits
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        assert!(
            hi - lo > 1.0,
            "{dtype:?}: step {step}: logits in [{lo}, {hi}]"
        );
    }
    run
}

#[test]
fn logits_are_the_same_bits_as_on_candles_own_decoding() {
    let bytes = model_file(&CANDLE_TYPES);
    let file = GgufFile::from_bytes(bytes.clone()).unwrap();
    let dev = Device::Cpu;
    for dtype in [DType::F32, DType::BF16] {
        let ours = gemma3::load_ours(&file, dtype, &dev).unwrap();
        let theirs = gemma3::load_candle(&mut Cursor::new(&bytes), &dev).unwrap();
        assert_eq!(ours.len(), theirs.len());
        assert_eq!(gemma3::differing_tensors(&ours, &theirs).unwrap(), vec![]);
        let a = run(&file, ours, dtype);
        let b = run(&file, theirs, dtype);
        assert_eq!(a.tokens, b.tokens, "{dtype:?}: tokens");
        for (step, (x, y)) in a.logits.iter().zip(&b.logits).enumerate() {
            assert_bits_eq(&format!("{dtype:?}: logits of step {step}"), x, y);
        }
        let d = gemma3::compare_logits(&a.logits, &b.logits);
        assert_eq!((d.identical_steps, d.max_abs_diff), (STEPS, 0.0));
    }
}

#[test]
fn types_candle_cannot_read_run_on_ggmls_values() {
    let bytes = model_file(&OTHER_TYPES);
    assert!(
        gguf_file::Content::read(&mut Cursor::new(&bytes)).is_err(),
        "candle reads these types now: move them to CANDLE_TYPES"
    );
    let file = GgufFile::from_bytes(bytes).unwrap();
    let ours = gemma3::load_ours(&file, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(ours.len(), file.tensors().len());
    for t in file.tensors() {
        let mut want = vec![0f32; t.n_elems as usize];
        cpu::dequantize_reference(t.ty, file.tensor_data(t).unwrap(), &mut want).unwrap();
        let got = ours[&t.name]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_bits_eq(&format!("{} ({})", t.name, t.ty), &got, &want);
    }
    run(&file, ours, DType::F32);
}
