/* q4_k: y = (d * sc) * q - dmin * m per sub-block of 32, q a 4-bit code, sc
   and m 6-bit. Layout in src/cpu/q4_k.rs, which this mirrors. */
#include "common.cuh"
#include "k_common.cuh"

struct q4_k {
    typedef block_q4_K Block;
    static constexpr int QK = 256, PARTS = 16, VALS = QK / PARTS;

    /* part p decodes half p % 2 of sub-block s = p / 2, which takes the low
       (s even) or high (s odd) nibbles of qs[32 * (s / 2)..][0..32] */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const int s = part / 2;
        int sc, m;
        gdq_scale_min_k4(s, b->scales, &sc, &m);
        /* ggml scales first, then applies: (d * sc) * q - (dmin * m) */
        const float d1 = gdq_f16_to_f32(b->d) * (float)sc;
        const float m1 = gdq_f16_to_f32(b->dmin) * (float)m;
        const uint8_t *qs = b->qs + (s / 2) * 32 + (part % 2) * 16;
        const int shift = (s % 2) * 4;
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = d1 * (float)((qs[j] >> shift) & 0xF) - m1;
        }
    }
};
GDQ_KERNELS(q4_k)
