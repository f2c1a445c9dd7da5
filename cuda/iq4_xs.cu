/* iq4_xs: y = (d * (ls - 32)) * KVALUES_IQ4NL[q], ls a 6-bit scale per 32 weights,
   q a 4-bit index. Mirrors src/cpu/iq4_xs.rs. */
#include "common.cuh"

struct iq4_xs {
    typedef block_iq4_xs Block;
    static constexpr int QK = 256, PARTS = 16, VALS = QK / PARTS;

    /* part p lies in sub-block ib = p / 2: even parts take the low nibbles of its
       16 bytes (its elements 0..15), odd parts the high ones */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const int ib = part >> 1;
        const int ls =
            ((b->scales_l[ib >> 1] >> 4 * (ib & 1)) & 0xF) | ((b->scales_h >> 2 * ib) & 3) << 4;
        const float dl = gdq_f16_to_f32(b->d) * (float)(ls - 32);
        const uint8_t *qs = b->qs + 16 * ib;
        const int shift = (part & 1) * 4;
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = dl * (float)KVALUES_IQ4NL[(qs[j] >> shift) & 0xF];
        }
    }
};
GDQ_KERNELS(iq4_xs)
