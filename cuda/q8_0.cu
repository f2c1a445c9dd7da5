/* q8_0: y = q * d, q a signed 8-bit code. Mirrors src/cpu/q8_0.rs. */
#include "common.cuh"

struct q8_0 {
    typedef block_q8_0 Block;
    static constexpr int QK = 32, PARTS = 4, VALS = QK / PARTS;

    /* part p takes elements 8p..8p+7, stored in order */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const float d = gdq_f16_to_f32(b->d);
        const int8_t *qs = b->qs + part * VALS;
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = (float)qs[j] * d;
        }
    }
};
GDQ_KERNELS(q8_0)
