/* iq2_s: 256 weights from the 1024-entry E8 lattice grid, explicit signs. Group l
   of sub-block ib32: grid index qs[4 * ib32 + l] | 2 bits of qh[ib32] << 8, sign
   byte qs[32 + 4 * ib32 + l]; scales as iq2_xs;
   y = d * (0.5 + s) * 0.25 * grid[j] * (+-1). Mirrors src/cpu/iq2_s.rs. */
#include "common.cuh"

struct iq2_s {
    typedef block_iq2_s Block;
    static constexpr int QK = 256, PARTS = 32, VALS = QK / PARTS;

    /* part = 4 * ib32 + l: group l (one grid entry) of sub-block ib32 */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const int ib32 = part >> 2, l = part & 3;
        const uint32_t s = (b->scales[ib32] >> (4 * (l >> 1))) & 0xF;
        const float d = gdq_f16_to_f32(b->d);
        const float db = d * (0.5f + (float)s) * 0.25f; /* ggml's order */
        const uint32_t hi = (b->qh[ib32] >> (2 * l)) & 3;
        const uint64_t grid = IQ2S_GRID[b->qs[part] | (hi << 8)];
        const uint32_t signs = b->qs[32 + part];
        const uint32_t half[2] = {(uint32_t)grid, (uint32_t)(grid >> 32)};
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = gdq_flip(db * gdq_byte_f32(half[j >> 2], j & 3), signs, j);
        }
    }
};
GDQ_KERNELS(iq2_s)
