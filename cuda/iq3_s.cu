/* iq3_s: 256 weights from the 512-entry D4 lattice grid (4 weights an entry),
   explicit signs. Group l of sub-block ib32: grid indices qs[8 * ib32 + 2l + h] |
   bit 2l + h of qh[ib32] << 8 (h = 0, 1), sign byte signs[4 * ib32 + l]; 4-bit scale
   s: nibble ib32 % 2 of scales[ib32 / 2]; y = d * (1 + 2s) * grid[j] * (+-1).
   Mirrors src/cpu/iq3_s.rs. */
#include "common.cuh"

struct iq3_s {
    typedef block_iq3_s Block;
    static constexpr int QK = 256, PARTS = 16, VALS = QK / PARTS;

    /* part = 2 * ib32 + h: groups l = 2h and 2h + 1 of sub-block ib32; group
       p = 4 * ib32 + l has grid entries qs[2p], qs[2p + 1] (their 9th bits
       bits 2l, 2l + 1 of qh[ib32]) and signs[p] */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const int ib32 = part >> 1, h = part & 1;
        const int s = (b->scales[ib32 >> 1] >> (4 * (ib32 & 1))) & 0xF;
        const float d = gdq_f16_to_f32(b->d);
        const float db = d * (float)(1 + 2 * s); /* integer factor, one rounding */
        const uint32_t qh = b->qh[ib32] >> (4 * h);
#pragma unroll
        for (int g = 0; g < 2; g++) {
            const int p = 4 * ib32 + 2 * h + g;
            const uint32_t grid[2] = {IQ3S_GRID[b->qs[2 * p] | (((qh >> (2 * g)) & 1) << 8)],
                                      IQ3S_GRID[b->qs[2 * p + 1] | (((qh >> (2 * g)) & 2) << 7)]};
            const uint32_t signs = b->signs[p];
#pragma unroll
            for (int j = 0; j < 8; j++) {
                v[8 * g + j] = gdq_flip(db * gdq_byte_f32(grid[j >> 2], j & 3), signs, j);
            }
        }
    }
};
GDQ_KERNELS(iq3_s)
