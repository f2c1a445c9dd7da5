/* iq4_nl: y = d * KVALUES_IQ4NL[q], q a 4-bit index. Mirrors src/cpu/iq4_nl.rs. */
#include "common.cuh"

struct iq4_nl {
    typedef block_iq4_nl Block;
    static constexpr int QK = 32, PARTS = 4, VALS = QK / PARTS;

    /* parts 0, 1 take the low nibbles (elements 0..15), parts 2, 3 the high ones */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const float d = gdq_f16_to_f32(b->d);
        const uint8_t *qs = b->qs + (part & 1) * VALS;
        const int shift = (part >> 1) * 4;
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = d * (float)KVALUES_IQ4NL[(qs[j] >> shift) & 0xF];
        }
    }
};
GDQ_KERNELS(iq4_nl)
