//! A Gemma 3 GGUF file run by candle-transformers' `gemma3::Model`, on weights
//! decoded by this crate or by candle's own GGUF reader: shared by the
//! `candle_generate` example and `tests/candle_model.rs`.
//!
//! What an engine does with a GGUF model, in four steps:
//! 1. the model's configuration from the file's metadata ([`config`]);
//! 2. every tensor decoded to a dense candle tensor ([`load_ours`], or
//!    [`load_candle`] for candle's own decoder);
//! 3. GGUF's tensor names and conventions turned into those of the model code,
//!    here Hugging Face's ([`to_hf`]);
//! 4. the model built ([`model`]) and run ([`generate`]).

use std::collections::HashMap;
use std::io::{Read, Seek};

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::gemma3::{Config, Model};
use gguf_dequant::gguf::{Array, GgufFile};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;
/// Tensors by name.
pub type WeightMap = HashMap<String, Tensor>;

/// The model's configuration from the metadata of a `gemma3` file. Keys the
/// file may leave out take llama.cpp's values for Gemma 3 (as candle's own
/// `quantized_gemma3` does).
pub fn config(file: &GgufFile) -> Result<Config> {
    let arch = file
        .get("general.architecture")
        .and_then(|v| v.as_str())
        .unwrap_or("(none)");
    if arch != "gemma3" {
        return Err(format!("general.architecture is {arch}, not gemma3").into());
    }
    let num = |key: &str| -> Option<f64> { file.get(&format!("gemma3.{key}"))?.as_f64() };
    let required = |key: &str| num(key).ok_or_else(|| format!("metadata: no number gemma3.{key}"));
    let count = |key: &str| -> Result<usize> {
        let v = required(key)?;
        if v >= 1.0 && v.fract() == 0.0 && v <= u32::MAX as f64 {
            Ok(v as usize)
        } else {
            Err(format!("metadata: gemma3.{key} = {v} is not a positive integer").into())
        }
    };
    let embd = file
        .tensor("token_embd.weight")
        .ok_or("no tensor token_embd.weight")?;
    if file.tensor("output.weight").is_some() {
        // candle-transformers' gemma3 always ties the output to the embeddings.
        return Err("the file has output.weight: the model code ties it to token_embd".into());
    }
    let head_dim = count("attention.key_length")?;
    let vocab_size = *embd.ne.get(1).ok_or("token_embd.weight is not a matrix")?;
    Ok(Config {
        attention_bias: false,
        head_dim,
        // Gemma's feed-forward gate (`gelu_pytorch_tanh` in Hugging Face's config).
        hidden_activation: candle_nn::Activation::GeluPytorchTanh,
        hidden_size: count("embedding_length")?,
        intermediate_size: count("feed_forward_length")?,
        num_attention_heads: count("attention.head_count")?,
        num_hidden_layers: count("block_count")?,
        num_key_value_heads: count("attention.head_count_kv")?,
        rms_norm_eps: required("attention.layer_norm_rms_epsilon")?,
        rope_theta: num("rope.freq_base").unwrap_or(1_000_000.0),
        rope_local_base_freq: num("rope.freq_base_swa").unwrap_or(10_000.0),
        vocab_size: usize::try_from(vocab_size)?,
        final_logit_softcapping: num("final_logit_softcapping"),
        attn_logit_softcapping: num("attn_logit_softcapping"),
        query_pre_attn_scalar: head_dim,
        sliding_window: count("attention.sliding_window")?,
        sliding_window_pattern: sliding_window_pattern(file)?,
        max_position_embeddings: count("context_length")?,
    })
}

/// Every n-th layer attends to the whole context, the others within the
/// sliding window: n is 6 for Gemma 3 (llama.cpp's default), or what the file
/// says, as n or as the layers' flags (true: sliding), which the model code
/// can run only if they repeat every n-th layer.
fn sliding_window_pattern(file: &GgufFile) -> Result<usize> {
    let key = "gemma3.attention.sliding_window_pattern";
    let Some(v) = file.get(key) else {
        return Ok(6);
    };
    if let Some(n) = v.as_u64().filter(|&n| n >= 1) {
        return Ok(usize::try_from(n)?);
    }
    if let Some(Array::Bool(sliding)) = v.as_array() {
        let n = sliding
            .iter()
            .position(|&s| !s)
            .map_or(sliding.len() + 1, |i| i + 1);
        if sliding
            .iter()
            .enumerate()
            .all(|(i, &s)| s == ((i + 1) % n != 0))
        {
            return Ok(n);
        }
    }
    Err(format!("metadata: {key} = {v}: not a period of the model code's form").into())
}

/// Every tensor of `file`, decoded by this crate into `dtype` on `device`,
/// by GGUF name. The norm weights are always decoded to f32 (see [`to_hf`]).
pub fn load_ours(file: &GgufFile, dtype: DType, device: &Device) -> Result<WeightMap> {
    use gguf_dequant::candle::load;
    let mut weights = load(file, dtype, device, |t| !is_norm(&t.name))?;
    weights.extend(load(file, DType::F32, device, |t| is_norm(&t.name))?);
    Ok(weights)
}

/// Every tensor of the GGUF file `reader` holds, decoded to f32 by candle's
/// own GGUF reader (`QTensor::dequantize`), by GGUF name. candle reads only
/// some types: a file with any other fails here.
pub fn load_candle<R: Read + Seek>(reader: &mut R, device: &Device) -> Result<WeightMap> {
    let content = gguf_file::Content::read(reader)?;
    let mut weights = HashMap::new();
    for name in content.tensor_infos.keys() {
        let q = content.tensor(reader, name, device)?;
        weights.insert(name.clone(), q.dequantize(device)?);
    }
    Ok(weights)
}

fn is_norm(gguf_name: &str) -> bool {
    gguf_name.ends_with("norm.weight")
}

/// The Hugging Face name of a Gemma 3 tensor's GGUF name, as candle-transformers'
/// `gemma3` asks for it.
pub fn hf_name(gguf_name: &str) -> Option<String> {
    match gguf_name {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        _ => {}
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let part = match rest.strip_suffix(".weight")? {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "attn_norm" => "input_layernorm",
        "post_attention_norm" => "post_attention_layernorm",
        "ffn_norm" => "pre_feedforward_layernorm",
        "post_ffw_norm" => "post_feedforward_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{part}.weight"))
}

/// GGUF-named weights as the model code wants them: Hugging Face names, and
/// the norm weights without the 1 that llama.cpp's converter adds to them
/// (Gemma's RMSNorm scales by `1 + w`: GGUF stores `1 + w`, candle-transformers'
/// `gemma3` adds the 1 itself). Shapes need no change: both are row-major
/// `[out, in]`.
pub fn to_hf(weights: WeightMap) -> Result<WeightMap> {
    weights
        .into_iter()
        .map(|(name, t)| {
            let hf =
                hf_name(&name).ok_or_else(|| format!("tensor {name}: not a Gemma 3 weight"))?;
            let t = if is_norm(&name) { (t - 1.0)? } else { t };
            Ok((hf, t))
        })
        .collect()
}

/// candle-transformers' Gemma 3 on the given (Hugging Face named) weights,
/// computing in `dtype`.
pub fn model(cfg: &Config, weights: WeightMap, dtype: DType, device: &Device) -> Result<Model> {
    Ok(Model::new(
        false,
        cfg,
        VarBuilder::from_tensors(weights, dtype, device),
    )?)
}

/// What a run produced: the tokens after the prompt, the logits that chose
/// each one, and the seconds it took.
pub struct Run {
    pub tokens: Vec<u32>,
    pub logits: Vec<Vec<f32>>,
    pub secs: f64,
}

/// Greedy decoding: the prompt in one step, then one token a step, `steps`
/// steps or until a token of `stop`. `forward` is a model's forward pass (ids
/// `[1, seq]` and the position of the first). With `forced`, the tokens are
/// those instead of the model's choices (so that two models' logits are compared
/// on the same inputs).
pub fn generate(
    mut forward: impl FnMut(&Tensor, usize) -> candle_core::Result<Tensor>,
    prompt: &[u32],
    steps: usize,
    stop: &[u32],
    forced: Option<&[u32]>,
) -> Result<Run> {
    let steps = forced.map_or(steps, |f| f.len().min(steps));
    let start = std::time::Instant::now();
    let mut run = Run {
        tokens: Vec::new(),
        logits: Vec::new(),
        secs: 0.0,
    };
    let mut input = prompt.to_vec();
    let mut position = 0;
    for step in 0..steps {
        let ids = Tensor::new(input.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let logits = forward(&ids, position)?
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        position += input.len();
        let next = match forced {
            Some(f) => f[step],
            None => argmax(&logits).ok_or("empty logits")?,
        };
        run.logits.push(logits);
        run.tokens.push(next);
        if stop.contains(&next) {
            break;
        }
        input = vec![next];
    }
    run.secs = start.elapsed().as_secs_f64();
    Ok(run)
}

/// The index of the largest value (the first of equals; NaN counts as largest).
pub fn argmax(v: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in v.iter().enumerate() {
        if best.is_none_or(|(_, b)| x.total_cmp(&b).is_gt()) {
            best = Some((i, x));
        }
    }
    best.and_then(|(i, _)| u32::try_from(i).ok())
}

/// How two runs' logits compare, step by step.
#[derive(Debug, PartialEq)]
pub struct LogitsDiff {
    pub steps: usize,
    /// Steps whose logits are the same bits.
    pub identical_steps: usize,
    pub max_abs_diff: f32,
    /// Steps where both would choose the same next token.
    pub same_argmax: usize,
}

pub fn compare_logits(a: &[Vec<f32>], b: &[Vec<f32>]) -> LogitsDiff {
    let mut d = LogitsDiff {
        steps: a.len().min(b.len()),
        identical_steps: 0,
        max_abs_diff: 0.0,
        same_argmax: 0,
    };
    for (x, y) in a.iter().zip(b) {
        let same_bits =
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
        d.identical_steps += usize::from(same_bits);
        d.same_argmax += usize::from(argmax(x) == argmax(y));
        for (p, q) in x.iter().zip(y) {
            let diff = (p - q).abs();
            if diff > d.max_abs_diff || diff.is_nan() {
                d.max_abs_diff = diff;
            }
        }
    }
    d
}

/// The tensors of `a` whose values differ from `b`'s (by bits, `b`'s rounded to
/// `a`'s dtype by candle), with how many values differ, sorted by name.
pub fn differing_tensors(a: &WeightMap, b: &WeightMap) -> Result<Vec<(String, usize)>> {
    let mut out = Vec::new();
    for (name, x) in a {
        let y = b
            .get(name)
            .ok_or_else(|| format!("tensor {name}: missing"))?;
        if x.dims() != y.dims() {
            return Err(
                format!("tensor {name}: shape {:?} against {:?}", x.dims(), y.dims()).into(),
            );
        }
        let bits = |t: &Tensor| -> Result<Vec<u32>> {
            let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            Ok(v.into_iter().map(f32::to_bits).collect())
        };
        let n = bits(x)?
            .iter()
            .zip(&bits(&y.to_dtype(x.dtype())?)?)
            .filter(|(p, q)| p != q)
            .count();
        if n > 0 {
            out.push((name.clone(), n));
        }
    }
    out.sort();
    Ok(out)
}
