/* mxfp4: y = KVALUES_MXFP4[q] * 2^(e - 128): E2M1 values doubled, times half the
   E8M0 scale. Mirrors src/cpu/mxfp4.rs. */
#include "common.cuh"

/* Half the E8M0 scale 2^(e - 127), from its bits (subnormal for e < 2), as
   ggml's ggml_e8m0_to_fp32_half. */
GDQ_FN float mxfp4_e8m0_to_f32_half(uint8_t e) {
    return gdq_f32_from_bits(e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23);
}

struct mxfp4 {
    typedef block_mxfp4 Block;
    static constexpr int QK = 32, PARTS = 4, VALS = QK / PARTS;

    /* parts 0, 1 take the low nibbles (elements 0..15), parts 2, 3 the high ones */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const float d = mxfp4_e8m0_to_f32_half(b->e);
        const uint8_t *qs = b->qs + (part & 1) * VALS;
        const int shift = (part >> 1) * 4;
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = (float)KVALUES_MXFP4[(qs[j] >> shift) & 0xF] * d;
        }
    }
};
GDQ_KERNELS(mxfp4)
