/* What the k-quants q4_k and q5_k share: their 12 bytes of packed 6-bit
   sub-block scales and mins. Mirrors src/cpu/k_common.rs. */
#ifndef GGUF_DEQUANT_K_COMMON_CUH
#define GGUF_DEQUANT_K_COMMON_CUH

#include "common.cuh"

/* The 6-bit scale and min of sub-block j < 8 (ggml's get_scale_min_k4).
   Sub-blocks 0..3 keep theirs whole in the low 6 bits of s[j] (scale) and
   s[j + 4] (min). Sub-blocks 4..7 keep their low 4 bits in the nibbles of
   s[j + 4] (scale low, min high) and their top 2 bits in the spare top bits of
   s[j - 4] (scale) and s[j] (min). */
GDQ_FN void gdq_scale_min_k4(int j, const uint8_t *s, int *sc, int *m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

#endif
