/* q2_0: y = (c - 1) * d, c a 2-bit code. Mirrors src/cpu/q2_0.rs. */
#include "common.cuh"

struct q2_0 {
    typedef block_q2_0 Block;
    static constexpr int QK = 64, PARTS = 4, VALS = QK / PARTS;

    /* part p takes elements 16p..16p+15: qs[4p..4p+3] read as one little-endian
       32-bit word (byte by byte: the block is only 2-byte aligned), 2 bits each */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const float d = gdq_f16_to_f32(b->d);
        const uint8_t *qs = b->qs + 4 * part;
        const uint32_t bits =
            qs[0] | (uint32_t)qs[1] << 8 | (uint32_t)qs[2] << 16 | (uint32_t)qs[3] << 24;
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = (float)((int)((bits >> (2 * j)) & 3) - 1) * d;
        }
    }
};
GDQ_KERNELS(q2_0)
