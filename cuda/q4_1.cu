/* q4_1: y = q * d + m, q a 4-bit code; the product, then the sum, each rounded
   (no FMA: --fmad=false). Mirrors src/cpu/q4_1.rs. */
#include "common.cuh"

struct q4_1 {
    typedef block_q4_1 Block;
    static constexpr int QK = 32, PARTS = 4, VALS = QK / PARTS;

    /* parts 0, 1 take the low nibbles (elements 0..15), parts 2, 3 the high ones */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const float d = gdq_f16_to_f32(b->d);
        const float m = gdq_f16_to_f32(b->m);
        const uint8_t *qs = b->qs + (part & 1) * VALS;
        const int shift = (part >> 1) * 4;
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = (float)((qs[j] >> shift) & 0xF) * d + m;
        }
    }
};
GDQ_KERNELS(q4_1)
