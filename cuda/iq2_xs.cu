/* iq2_xs: 256 weights from the 512-entry E8 lattice grid. qs[4 * ib32 + l]: 9-bit
   grid index, 7-bit sign index; scales[ib32]: 4-bit scales s for groups 0-1 (low)
   and 2-3 (high); y = d * (0.5 + s) * 0.25 * grid[j] * (+-1).
   Mirrors src/cpu/iq2_xs.rs. */
#include "common.cuh"

struct iq2_xs {
    typedef block_iq2_xs Block;
    static constexpr int QK = 256, PARTS = 32, VALS = QK / PARTS;

    /* part = 4 * ib32 + l: group l (one grid entry) of sub-block ib32, coded by qs[part] */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const int ib32 = part >> 2, l = part & 3;
        const uint32_t s = (b->scales[ib32] >> (4 * (l >> 1))) & 0xF;
        const float d = gdq_f16_to_f32(b->d);
        const float db = d * (0.5f + (float)s) * 0.25f; /* ggml's order */
        const uint32_t q = b->qs[part];
        const uint64_t grid = IQ2XS_GRID[q & 511];
        const uint32_t signs = KSIGNS_IQ2XS[q >> 9];
        const uint32_t half[2] = {(uint32_t)grid, (uint32_t)(grid >> 32)};
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = gdq_flip(db * gdq_byte_f32(half[j >> 2], j & 3), signs, j);
        }
    }
};
GDQ_KERNELS(iq2_xs)
