//! Random valid blocks of every type: inputs for the default job, benchmarks,
//! synthetic model files and tests.
//!
//! "Valid" means the scales are finite and of realistic size, so decoded values
//! are finite; every other bit (codes, signs, grid indices, sub-block scales) is
//! uniformly random, which reaches every table entry and code path.

use std::mem::offset_of;

use crate::blocks::*;
use crate::types::GgmlType;

/// SplitMix64: small, fast, deterministic; enough for test data.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&last[..n]);
    }

    /// A finite half-precision value with magnitude in [2^-12, 2), random sign
    /// when `signed`: the range real block scales take.
    pub fn scale_f16(&mut self, signed: bool) -> u16 {
        let r = self.next_u64();
        let exp = 3 + (r % 13) as u16; // biased exponent 3..=15: 2^-12 .. 2^0
        let man = ((r >> 8) & 0x3ff) as u16;
        let sign = if signed && (r >> 20) & 1 == 1 {
            0x8000
        } else {
            0
        };
        sign | (exp << 10) | man
    }
}

/// Byte offsets of a block's f16 scale fields: what must be finite. The offsets
/// come from the one layout definition (cuda/blocks.h through bindgen).
fn scale_fields(ty: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 | Q1_0 | Q2_0 | IQ2_XXS | IQ2_XS | IQ2_S | IQ3_XXS | IQ3_S | IQ1_S
        | IQ4_NL | IQ4_XS => &[0],
        Q4_1 => &[offset_of!(block_q4_1, d), offset_of!(block_q4_1, m)],
        Q5_1 => &[offset_of!(block_q5_1, d), offset_of!(block_q5_1, m)],
        Q2_K => &[offset_of!(block_q2_K, d), offset_of!(block_q2_K, dmin)],
        Q3_K => &[offset_of!(block_q3_K, d)],
        Q4_K => &[offset_of!(block_q4_K, d), offset_of!(block_q4_K, dmin)],
        Q5_K => &[offset_of!(block_q5_K, d), offset_of!(block_q5_K, dmin)],
        Q6_K => &[offset_of!(block_q6_K, d)],
        TQ1_0 => &[offset_of!(block_tq1_0, d)],
        TQ2_0 => &[offset_of!(block_tq2_0, d)],
        _ => &[],
    }
}

/// `n_blocks` random valid blocks of `ty` (for f32/f16/bf16, `n_blocks` values).
pub fn random_blocks(ty: GgmlType, n_blocks: usize, rng: &mut Rng) -> Vec<u8> {
    let mut out = vec![0u8; n_blocks * ty.block_bytes()];
    fill_random_blocks(ty, &mut out, rng);
    out
}

/// Fills `buf` (whole blocks of `ty`; a partial block at the end stays random)
/// with random valid blocks.
pub fn fill_random_blocks(ty: GgmlType, buf: &mut [u8], rng: &mut Rng) {
    rng.fill(buf);
    for b in buf.chunks_exact_mut(ty.block_bytes()) {
        make_valid(ty, b, rng);
    }
}

fn make_valid(ty: GgmlType, b: &mut [u8], rng: &mut Rng) {
    match ty {
        GgmlType::F32 => {
            let v = half::f16::from_bits(rng.scale_f16(true)).to_f32()
                * (1.0 + rng.below(1 << 13) as f32 / 8192.0);
            b.copy_from_slice(&v.to_le_bytes());
        }
        GgmlType::F16 => b.copy_from_slice(&rng.scale_f16(true).to_le_bytes()),
        GgmlType::BF16 => {
            let v = half::bf16::from_f32(half::f16::from_bits(rng.scale_f16(true)).to_f32());
            b.copy_from_slice(&v.to_bits().to_le_bytes());
        }
        GgmlType::MXFP4 => b[offset_of!(block_mxfp4, e)] = 110 + rng.below(30) as u8,
        GgmlType::IQ1_M => {
            // The f16 super-block scale is the top nibble of each of the 4 u16 scales.
            let d = rng.scale_f16(false);
            let base = offset_of!(block_iq1_m, scales);
            for i in 0..4 {
                let at = base + 2 * i;
                let mut s = u16::from_le_bytes([b[at], b[at + 1]]);
                s = (s & 0x0fff) | (((d >> (4 * i)) & 0xf) << 12);
                b[at..at + 2].copy_from_slice(&s.to_le_bytes());
            }
        }
        // UE4M3 scales: every byte decodes to a finite value.
        GgmlType::NVFP4 => {}
        _ => {
            for &at in scale_fields(ty) {
                let signed = !matches!(ty, GgmlType::Q2_K | GgmlType::Q4_K | GgmlType::Q5_K);
                b[at..at + 2].copy_from_slice(&rng.scale_f16(signed).to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_blocks_decode_to_finite_values() {
        let mut rng = Rng(7);
        for ty in GgmlType::dequantizable() {
            let src = random_blocks(ty, 9, &mut rng);
            let out: Vec<f32> = crate::cpu::dequantize_to_vec(ty, &src).unwrap();
            assert!(out.iter().all(|v| v.is_finite()), "{ty}");
            let distinct = out
                .iter()
                .map(|v| v.to_bits())
                .collect::<std::collections::HashSet<_>>();
            assert!(
                distinct.len() > 2,
                "{ty}: random blocks should give varied values"
            );
        }
    }
}

/// One tensor of a synthetic model: name, type and ggml `ne`.
#[derive(Clone, Debug)]
pub struct TensorPlan {
    pub name: String,
    pub ty: GgmlType,
    pub ne: Vec<u64>,
}

/// The model shapes `synth --like` knows.
pub const PRESETS: &[&str] = &[
    "qwen2.5-0.5b-q4_k_m",
    "llama-3-8b-q4_k_m",
    "tiny-llama-q4_k_m",
    "all-types",
];

/// llama.cpp's choice of the layers that get more bits in *_M mixes.
fn use_more_bits(layer: u64, n_layers: u64) -> bool {
    layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2
}

/// The tensors of a preset, in the order llama.cpp writes them.
pub fn preset(name: &str) -> Option<Vec<TensorPlan>> {
    use GgmlType::*;
    let t = |name: String, ty: GgmlType, ne: &[u64]| TensorPlan {
        name,
        ty,
        ne: ne.to_vec(),
    };
    let mut v = Vec::new();
    match name {
        // Qwen2.5-0.5B: rows of 896 are not a multiple of 256, so llama.cpp's
        // Q4_K_M falls back to q5_0 (for q4_K) and q8_0 (for q6_K) there.
        "qwen2.5-0.5b-q4_k_m" => {
            let (h, ffn, layers, vocab, kv) = (896, 4864, 24, 151936, 128);
            v.push(t("token_embd.weight".into(), Q8_0, &[h, vocab]));
            for i in 0..layers {
                let p = format!("blk.{i}.");
                v.push(t(p.clone() + "attn_norm.weight", F32, &[h]));
                v.push(t(p.clone() + "attn_q.weight", Q5_0, &[h, h]));
                v.push(t(p.clone() + "attn_q.bias", F32, &[h]));
                v.push(t(p.clone() + "attn_k.weight", Q5_0, &[h, kv]));
                v.push(t(p.clone() + "attn_k.bias", F32, &[kv]));
                v.push(t(p.clone() + "attn_v.weight", Q8_0, &[h, kv]));
                v.push(t(p.clone() + "attn_v.bias", F32, &[kv]));
                v.push(t(p.clone() + "attn_output.weight", Q5_0, &[h, h]));
                v.push(t(p.clone() + "ffn_norm.weight", F32, &[h]));
                v.push(t(p.clone() + "ffn_gate.weight", Q5_0, &[h, ffn]));
                v.push(t(p.clone() + "ffn_up.weight", Q5_0, &[h, ffn]));
                let down = if use_more_bits(i, layers) { Q6_K } else { Q4_K };
                v.push(t(p + "ffn_down.weight", down, &[ffn, h]));
            }
            v.push(t("output_norm.weight".into(), F32, &[h]));
        }
        // tiny-llama: llama-3-8b's tensors and types at an 8th of its width and
        // 2 layers (5.4 M elements): small enough for the software CUDA driver
        // (fakecuda/), whose kernels run in an interpreter.
        "llama-3-8b-q4_k_m" | "tiny-llama-q4_k_m" => {
            let (h, ffn, layers, vocab, kv) = if name == "tiny-llama-q4_k_m" {
                (512, 1024, 2, 1024, 128)
            } else {
                (4096, 14336, 32, 128256, 1024)
            };
            v.push(t("token_embd.weight".into(), Q4_K, &[h, vocab]));
            for i in 0..layers {
                let p = format!("blk.{i}.");
                let more = if use_more_bits(i, layers) { Q6_K } else { Q4_K };
                v.push(t(p.clone() + "attn_norm.weight", F32, &[h]));
                v.push(t(p.clone() + "attn_q.weight", Q4_K, &[h, h]));
                v.push(t(p.clone() + "attn_k.weight", Q4_K, &[h, kv]));
                v.push(t(p.clone() + "attn_v.weight", more, &[h, kv]));
                v.push(t(p.clone() + "attn_output.weight", Q4_K, &[h, h]));
                v.push(t(p.clone() + "ffn_norm.weight", F32, &[h]));
                v.push(t(p.clone() + "ffn_gate.weight", Q4_K, &[h, ffn]));
                v.push(t(p.clone() + "ffn_up.weight", Q4_K, &[h, ffn]));
                v.push(t(p + "ffn_down.weight", more, &[ffn, h]));
            }
            v.push(t("output_norm.weight".into(), F32, &[h]));
            v.push(t("output.weight".into(), Q6_K, &[h, vocab]));
        }
        "all-types" => {
            for ty in GgmlType::dequantizable() {
                v.push(t(format!("all.{}", ty.name()), ty, &[4096, 1024]));
            }
        }
        _ => return None,
    }
    Some(v)
}
