/* q5_1: y = q * d + m, q a 5-bit code packed as q5_0's; the product, then the
   sum, each rounded (no FMA: --fmad=false). Mirrors src/cpu/q5_1.rs. */
#include "common.cuh"

struct q5_1 {
    typedef block_q5_1 Block;
    static constexpr int QK = 32, PARTS = 4, VALS = QK / PARTS;

    /* as q5_0: parts 0, 1 low nibbles, parts 2, 3 high ones; part p's 5th bits
       are the bits of qh[p] */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const float d = gdq_f16_to_f32(b->d);
        const float m = gdq_f16_to_f32(b->m);
        const uint8_t *qs = b->qs + (part & 1) * VALS;
        const int shift = (part >> 1) * 4;
        const uint32_t qh = b->qh[part];
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            const int q = ((qs[j] >> shift) & 0xF) | ((qh >> j) & 1) << 4;
            v[j] = (float)q * d + m;
        }
    }
};
GDQ_KERNELS(q5_1)
