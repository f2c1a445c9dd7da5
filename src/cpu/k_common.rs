//! What the k-quants q4_k and q5_k share: their 12 bytes of packed 6-bit
//! sub-block scales and mins. Mirrors `cuda/k_common.cuh`.

/// The 6-bit `(scale, min)` of sub-block `j < 8` (ggml's `get_scale_min_k4`).
///
/// Sub-blocks 0..3 keep theirs whole in the low 6 bits of `s[j]` (scale) and
/// `s[j + 4]` (min). Sub-blocks 4..7 keep their low 4 bits in the nibbles of
/// `s[j + 4]` (scale low, min high) and their top 2 bits in the spare top bits
/// of `s[j - 4]` (scale) and `s[j]` (min).
#[inline(always)]
pub fn scale_min_k4(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}
