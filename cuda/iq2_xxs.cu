/* iq2_xxs: 256 weights from the 256-entry E8 lattice grid. Per sub-block of 32,
   two u32 (4 u16 of qs): 4 grid bytes, then 4 x 7-bit sign indices and a 4-bit
   scale s; y = d * (0.5 + s) * 0.25 * grid[j] * (+-1). Mirrors src/cpu/iq2_xxs.rs. */
#include "common.cuh"

struct iq2_xxs {
    typedef block_iq2_xxs Block;
    static constexpr int QK = 256, PARTS = 16, VALS = QK / PARTS;

    /* part = 2 * ib32 + h: groups l = 2h and 2h + 1 (one grid entry each) of
       sub-block ib32, whose grid indices are the bytes of q[h]. Two groups a
       thread share the index arithmetic, the scale and the sign word. */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const int ib32 = part >> 1, h = part & 1;
        const uint16_t *q = b->qs + 4 * ib32;
        const uint32_t aux = q[2] | ((uint32_t)q[3] << 16);
        const float d = gdq_f16_to_f32(b->d);
        const float db = d * (0.5f + (float)(aux >> 28)) * 0.25f; /* ggml's order */
        const uint32_t idx = q[h];
#pragma unroll
        for (int g = 0; g < 2; g++) {
            const int l = 2 * h + g;
            const uint64_t grid = IQ2XXS_GRID[(idx >> (8 * g)) & 0xFF];
            const uint32_t signs = KSIGNS_IQ2XS[(aux >> (7 * l)) & 127];
            const uint32_t half[2] = {(uint32_t)grid, (uint32_t)(grid >> 32)};
#pragma unroll
            for (int j = 0; j < 8; j++) {
                v[8 * g + j] = gdq_flip(db * gdq_byte_f32(half[j >> 2], j & 3), signs, j);
            }
        }
    }
};
GDQ_KERNELS(iq2_xxs)
