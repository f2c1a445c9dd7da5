/* q1_0: y = bit ? d : -d, one sign bit per weight. Mirrors src/cpu/q1_0.rs. */
#include "common.cuh"

struct q1_0 {
    typedef block_q1_0 Block;
    static constexpr int QK = 128, PARTS = 8, VALS = QK / PARTS;

    /* part p takes elements 16p..16p+15: the bits of qs[2p] then qs[2p + 1],
       read as one little-endian 16-bit word */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const float d = gdq_f16_to_f32(b->d);
        const uint32_t bits = b->qs[2 * part] | (uint32_t)b->qs[2 * part + 1] << 8;
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = (bits >> j) & 1 ? d : -d;
        }
    }
};
GDQ_KERNELS(q1_0)
