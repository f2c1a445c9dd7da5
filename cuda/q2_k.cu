/* q2_k: y = (d * sc) * q - dmin * m per group of 16, q a 2-bit code, sc and m
   4-bit. Layout in src/cpu/q2_k.rs, which this mirrors. */
#include "common.cuh"

struct q2_k {
    typedef block_q2_K Block;
    static constexpr int QK = 256, PARTS = 16, VALS = QK / PARTS;

    /* part g decodes group g: half g / 8, bit pair (g % 8) / 2, bytes 0..15 or 16..31 */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const int sc = b->scales[part];
        /* ggml scales first, then applies: (d * sc) * q - (dmin * m) */
        const float dl = gdq_f16_to_f32(b->d) * (float)(sc & 0xF);
        const float ml = gdq_f16_to_f32(b->dmin) * (float)(sc >> 4);
        const uint8_t *qs = b->qs + (part / 8) * 32 + (part % 2) * 16;
        const int shift = (part % 8) / 2 * 2;
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = dl * (float)((qs[j] >> shift) & 3) - ml;
        }
    }
};
GDQ_KERNELS(q2_k)
