/* iq3_s: 256 weights from the 512-entry D4 lattice grid (4 weights an entry),
   explicit signs. Group l of sub-block ib32: grid indices qs[8 * ib32 + 2l + h] |
   bit 2l + h of qh[ib32] << 8 (h = 0, 1), sign byte signs[4 * ib32 + l]; 4-bit scale
   s: nibble ib32 % 2 of scales[ib32 / 2]; y = d * (1 + 2s) * grid[j] * (+-1).
   Mirrors src/cpu/iq3_s.rs. */
#include "common.cuh"

struct iq3_s {
    typedef block_iq3_s Block;
    static constexpr int QK = 256, PARTS = 32, VALS = QK / PARTS;

    /* part = 4 * ib32 + l: group l of sub-block ib32, grid entries qs[2 * part], qs[2 * part + 1] */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const int ib32 = part >> 2, l = part & 3;
        const int s = (b->scales[ib32 >> 1] >> (4 * (ib32 & 1))) & 0xF;
        const float d = gdq_f16_to_f32(b->d);
        const float db = d * (float)(1 + 2 * s); /* integer factor, one rounding */
        const uint32_t qh = b->qh[ib32] >> (2 * l);
        const uint32_t grid[2] = {IQ3S_GRID[b->qs[2 * part] | ((qh & 1) << 8)],
                                  IQ3S_GRID[b->qs[2 * part + 1] | ((qh & 2) << 7)]};
        const uint32_t signs = b->signs[part];
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            const float g = (float)(uint8_t)(grid[j >> 2] >> (8 * (j & 3)));
            v[j] = db * g * ((signs >> j) & 1 ? -1.f : 1.f);
        }
    }
};
GDQ_KERNELS(iq3_s)
