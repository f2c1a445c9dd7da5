/* iq1_s: 256 weights from the 2048-entry ternary grid (-1, 0, 1) plus a shift.
   qh[ib]: 3 high grid-index bits per group, 3-bit scale s (bits 12-14), shift sign
   (bit 15); y = d * (2s + 1) * (grid[j] + delta), delta = -+IQ1S_DELTA.
   Mirrors src/cpu/iq1_s.rs. */
#include "common.cuh"

/* ggml's IQ1S_DELTA: the shift added to every grid value */
#define IQ1S_DELTA 0.125f

struct iq1_s {
    typedef block_iq1_s Block;
    static constexpr int QK = 256, PARTS = 32, VALS = QK / PARTS;

    /* part = 4 * ib + l: group l (one grid entry, index qs[part]) of sub-block ib */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const int ib = part >> 2, l = part & 3;
        const uint32_t qh = b->qh[ib];
        const float d = gdq_f16_to_f32(b->d);
        const float dl = d * (float)(2 * (int)((qh >> 12) & 7) + 1); /* integer factor, one rounding */
        const float delta = qh & 0x8000 ? -IQ1S_DELTA : IQ1S_DELTA;
        const uint64_t grid = IQ1S_GRID[b->qs[part] | (((qh >> (3 * l)) & 7) << 8)];
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            const float g = (float)(int8_t)(uint8_t)(grid >> (8 * j));
            v[j] = dl * (g + delta);
        }
    }
};
GDQ_KERNELS(iq1_s)
