/* q5_0: y = d * (q - 16), q a 5-bit code: 4 bits as q4_0's nibbles, the 5th from
   qh. Mirrors src/cpu/q5_0.rs. */
#include "common.cuh"

struct q5_0 {
    typedef block_q5_0 Block;
    static constexpr int QK = 32, PARTS = 4, VALS = QK / PARTS;

    /* parts 0, 1 take the low nibbles (elements 0..15), parts 2, 3 the high ones.
       Element e's 5th bit is bit e of the little-endian u32 qh, that is bit e % 8
       of qh[e / 8]: part p's 8 elements all read qh[p]. */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const float d = gdq_f16_to_f32(b->d);
        const uint8_t *qs = b->qs + (part & 1) * VALS;
        const int shift = (part >> 1) * 4;
        const uint32_t qh = b->qh[part];
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            const int q = ((qs[j] >> shift) & 0xF) | ((qh >> j) & 1) << 4;
            v[j] = (float)(q - 16) * d;
        }
    }
};
GDQ_KERNELS(q5_0)
