//! An engine runs a real model on weights this crate decoded: a Gemma 3 GGUF
//! file, every tensor decoded by `gguf_dequant::candle::load`, run by
//! candle-transformers' own Gemma 3 code (the Hugging Face architecture), with
//! greedy decoding.
//!
//! ```sh
//! scripts/fetch-gemma3-270m.sh models     # Gemma 3 270M, Q4_K_M (253 MB)
//! cargo run --release --features candle --example candle_generate -- \
//!     models/gemma3-270m-q4_k_m.gguf ["The capital of France is"] [-n 12] [--dtype f32|bf16]
//! ```
//!
//! Then it checks the result against two other ways candle runs the file:
//! - the same model code on weights decoded by candle's own GGUF reader
//!   (`QTensor::dequantize`): both decoders are bit-exact to ggml, so the logits
//!   must be the same bits at every step (the files' types candle reads: f32,
//!   f16, bf16, the legacy and the K-quants; with any other, candle cannot read
//!   the file and the comparison is skipped);
//! - candle-transformers' `quantized_gemma3`, which multiplies by the quantized
//!   blocks after rounding the activations to 8 bits (q8 dot products): close,
//!   not equal. (In candle-transformers 0.11 it also gates the feed-forward with
//!   SiLU where Gemma uses GELU, candle issue #3745, so it drifts further.)
//!
//! Both are run on the tokens the first run chose, so that logits compare step
//! for step. The prompt is tokenized by greedy longest match over the file's
//! vocabulary (not SentencePiece's exact algorithm, but the ids are printed, so
//! the run is reproducible).

#[path = "../tests/common/gemma3.rs"]
mod gemma3;

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::quantized_gemma3;
use gemma3::Result;
use gguf_dequant::gguf::{Array, GgufFile};

const USAGE: &str = "usage: candle_generate MODEL.gguf [PROMPT] [-n TOKENS] [--dtype f32|bf16]";

struct Args {
    model: String,
    prompt: String,
    tokens: usize,
    dtype: DType,
}

fn args() -> Result<Args> {
    let mut a = Args {
        model: String::new(),
        prompt: "The capital of France is".into(),
        tokens: 12,
        dtype: DType::F32,
    };
    let mut positional = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-n" | "--tokens" => {
                let n = it.next().ok_or("-n needs a number")?;
                a.tokens = n.parse().map_err(|_| format!("-n {n}: not a number"))?;
            }
            "--dtype" => {
                a.dtype = match it.next().as_deref() {
                    Some("f32") => DType::F32,
                    Some("bf16") => DType::BF16,
                    other => {
                        let other = other.unwrap_or("(none)");
                        return Err(format!("--dtype {other}: f32 or bf16").into());
                    }
                }
            }
            "-h" | "--help" => return Err(USAGE.into()),
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    a.model = positional.next().ok_or(USAGE)?;
    if let Some(p) = positional.next() {
        a.prompt = p;
    }
    if positional.next().is_some() {
        return Err(USAGE.into());
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = args()?;
    let dev = Device::Cpu;
    let file = GgufFile::open(&args.model)?;
    let mut cfg = gemma3::config(&file)?;
    let tok = Tokenizer::from_gguf(&file)?;
    let prompt = tok.encode(&args.prompt)?;
    let positions = prompt.len() + args.tokens;
    if prompt.is_empty() || args.tokens == 0 || positions > cfg.max_position_embeddings {
        return Err(format!(
            "{} prompt tokens and {} to generate: at least 1 of each, {} in all at most",
            prompt.len(),
            args.tokens,
            cfg.max_position_embeddings
        )
        .into());
    }
    // Position tables for only as many positions as this run uses, not the
    // whole context (candle-transformers computes them for every layer).
    cfg.max_position_embeddings = positions;
    println!(
        "model: {} (gemma3: {} layers, hidden {}, {} heads of {}, vocab {})",
        args.model,
        cfg.num_hidden_layers,
        cfg.hidden_size,
        cfg.num_attention_heads,
        cfg.head_dim,
        cfg.vocab_size
    );
    println!("prompt: {:?}", args.prompt);
    println!("prompt ids: {prompt:?}");

    // 1. Decoded by this crate, run by candle-transformers' gemma3.
    let t = Instant::now();
    let ours = gemma3::load_ours(&file, args.dtype, &dev)?;
    println!(
        "gguf-dequant: decoded {} tensors ({}) into {:?} in {:.2} s",
        ours.len(),
        type_counts(&file),
        args.dtype,
        t.elapsed().as_secs_f64()
    );
    let mut model = gemma3::model(&cfg, gemma3::to_hf(ours.clone())?, args.dtype, &dev)?;
    let run = gemma3::generate(
        |x, pos| model.forward(x, pos),
        &prompt,
        args.tokens,
        &tok.stop,
        None,
    )?;
    drop(model);
    println!(
        "generated {} tokens in {:.2} s ({:.1} tokens/s): {:?}",
        run.tokens.len(),
        run.secs,
        run.tokens.len() as f64 / run.secs,
        run.tokens
    );
    println!(
        "text: {:?}",
        format!("{}{}", args.prompt, tok.decode(&run.tokens))
    );

    // 2. The same model code on candle's own decoding of the same file.
    let mut reader = std::fs::File::open(&args.model)?;
    let t = Instant::now();
    match gemma3::load_candle(&mut reader, &dev) {
        Err(e) => println!("candle's GGUF reader: cannot read this file ({e}): comparison skipped"),
        Ok(theirs) => {
            let (n, secs) = (theirs.len(), t.elapsed().as_secs_f64());
            let differ = gemma3::differing_tensors(&ours, &theirs)?;
            let mut model = gemma3::model(&cfg, gemma3::to_hf(theirs)?, args.dtype, &dev)?;
            let same = replay(|x, pos| model.forward(x, pos), &prompt, &run)?;
            println!(
                "candle's GGUF reader: decoded {n} tensors in {secs:.2} s; the same model on them ran in {:.2} s",
                same.secs
            );
            if differ.is_empty() {
                println!("  weights: every tensor the same bits as ours");
            }
            for (name, n) in &differ {
                let ty = file.tensor(name).map_or("?", |t| t.ty.name());
                println!("  weights: {name} ({ty}): {n} values differ from ours");
            }
            report("  logits", &run, &same);
        }
    }

    // 3. candle's quantized Gemma 3 (quantized matmuls): close, not equal.
    let mut reader = std::fs::File::open(&args.model)?;
    let t = Instant::now();
    let quantized = gguf_file::Content::read(&mut reader)
        .and_then(|content| quantized_gemma3::ModelWeights::from_gguf(content, &mut reader, &dev));
    match quantized {
        Err(e) => {
            println!("candle's quantized_gemma3: cannot load this file ({e}): comparison skipped")
        }
        Ok(mut model) => {
            let secs = t.elapsed().as_secs_f64();
            let q = replay(|x, pos| model.forward(x, pos), &prompt, &run)?;
            println!(
                "candle's quantized_gemma3 (activations rounded to 8 bits in every matmul, SiLU gate): \
                 loaded in {secs:.2} s, ran in {:.2} s",
                q.secs
            );
            report("  logits against ours", &run, &q);
            // The same model code with its gate made SiLU too: what is left is
            // the activations' rounding.
            cfg.hidden_activation = candle_nn::Activation::Silu;
            let mut silu = gemma3::model(&cfg, gemma3::to_hf(ours)?, args.dtype, &dev)?;
            let s = replay(|x, pos| silu.forward(x, pos), &prompt, &run)?;
            report("  logits against ours with a SiLU gate", &s, &q);
        }
    }
    Ok(())
}

/// A model's logits on the tokens `run` chose, step for step.
fn replay(
    forward: impl FnMut(&Tensor, usize) -> candle_core::Result<Tensor>,
    prompt: &[u32],
    run: &gemma3::Run,
) -> Result<gemma3::Run> {
    gemma3::generate(forward, prompt, run.tokens.len(), &[], Some(&run.tokens))
}

/// One line on how `other`'s logits compare with `run`'s.
fn report(what: &str, run: &gemma3::Run, other: &gemma3::Run) {
    let d = gemma3::compare_logits(&run.logits, &other.logits);
    let first = match (other.logits.first(), run.logits.first()) {
        (Some(a), Some(b)) if gemma3::argmax(a) == gemma3::argmax(b) => "same",
        (Some(_), Some(_)) => "different",
        _ => "none",
    };
    println!(
        "{what}: bit-identical at {}/{} steps, max |diff| {}, same greedy token at {}/{} \
         (first token: {first})",
        d.identical_steps, d.steps, d.max_abs_diff, d.same_argmax, d.steps
    );
}

/// "q5_0 x81, f32 x109, ...": the file's tensor types.
fn type_counts(file: &GgufFile) -> String {
    let mut n = BTreeMap::new();
    for t in file.tensors() {
        *n.entry(t.ty.name()).or_insert(0) += 1;
    }
    n.iter()
        .map(|(ty, k)| format!("{ty} x{k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The file's vocabulary, enough to tokenize a plain-text prompt and show the
/// output: pieces with '▁' for spaces and `<0xNN>` byte tokens.
struct Tokenizer {
    pieces: Vec<String>,
    /// Pieces plain text can produce (normal and user-defined ones): id by piece.
    ids: HashMap<String, u32>,
    longest: usize,
    bos: Option<u32>,
    stop: Vec<u32>,
}

impl Tokenizer {
    fn from_gguf(file: &GgufFile) -> Result<Self> {
        let Some(Array::String(pieces)) =
            file.get("tokenizer.ggml.tokens").and_then(|v| v.as_array())
        else {
            return Err("metadata: no string array tokenizer.ggml.tokens".into());
        };
        let types = match file
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.as_array())
        {
            Some(Array::I32(t)) if t.len() == pieces.len() => t.clone(),
            _ => vec![1; pieces.len()],
        };
        let id = |key: &str| -> Option<u32> { u32::try_from(file.get(key)?.as_u64()?).ok() };
        let mut ids = HashMap::new();
        for (i, (p, &ty)) in pieces.iter().zip(&types).enumerate() {
            // 1: normal, 4: user-defined (3: control, 6: byte, 2 and 5: unknown, unused).
            if ty == 1 || ty == 4 {
                ids.entry(p.clone()).or_insert(u32::try_from(i)?);
            }
        }
        let end_of_turn = pieces.iter().position(|p| p == "<end_of_turn>");
        Ok(Tokenizer {
            longest: ids.keys().map(String::len).max().unwrap_or(0),
            ids,
            bos: id("tokenizer.ggml.bos_token_id"),
            stop: id("tokenizer.ggml.eos_token_id")
                .into_iter()
                .chain(end_of_turn.and_then(|i| u32::try_from(i).ok()))
                .collect(),
            pieces: pieces.clone(),
        })
    }

    /// BOS, then the longest piece at each place (bytes as `<0xNN>` where no
    /// piece matches).
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let s = text.replace(' ', "\u{2581}");
        let mut out: Vec<u32> = self.bos.into_iter().collect();
        let mut i = 0;
        while i < s.len() {
            let rest = &s[i..];
            let found = (1..=self.longest.min(rest.len()))
                .rev()
                .filter(|&n| rest.is_char_boundary(n))
                .find_map(|n| self.ids.get(&rest[..n]).map(|&id| (id, n)));
            if let Some((id, n)) = found {
                out.push(id);
                i += n;
                continue;
            }
            let c = rest.chars().next().ok_or("empty")?;
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let piece = format!("<0x{b:02X}>");
                let id = self.pieces.iter().position(|p| *p == piece);
                let id = id.ok_or_else(|| format!("no token for {c:?}"))?;
                out.push(u32::try_from(id)?);
            }
            i += c.len_utf8();
        }
        Ok(out)
    }

    fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            let piece = self.pieces.get(id as usize).map_or("<?>", String::as_str);
            let byte = piece
                .strip_prefix("<0x")
                .and_then(|h| h.strip_suffix('>'))
                .filter(|h| h.len() == 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match byte {
                Some(b) => bytes.push(b),
                None => bytes.extend_from_slice(piece.replace('\u{2581}', " ").as_bytes()),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
