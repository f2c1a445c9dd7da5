/* iq2_xxs: 256 weights from the 256-entry E8 lattice grid. Per sub-block of 32,
   two u32 (4 u16 of qs): 4 grid bytes, then 4 x 7-bit sign indices and a 4-bit
   scale s; y = d * (0.5 + s) * 0.25 * grid[j] * (+-1). Mirrors src/cpu/iq2_xxs.rs. */
#include "common.cuh"

struct iq2_xxs {
    typedef block_iq2_xxs Block;
    static constexpr int QK = 256, PARTS = 32, VALS = QK / PARTS;

    /* part = 4 * ib32 + l: group l (one grid entry) of sub-block ib32 */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const int ib32 = part >> 2, l = part & 3;
        const uint16_t *q = b->qs + 4 * ib32;
        const uint32_t aux = q[2] | ((uint32_t)q[3] << 16);
        const float d = gdq_f16_to_f32(b->d);
        const float db = d * (0.5f + (float)(aux >> 28)) * 0.25f; /* ggml's order */
        const uint64_t grid = IQ2XXS_GRID[(q[l >> 1] >> (8 * (l & 1))) & 0xFF];
        const uint32_t signs = KSIGNS_IQ2XS[(aux >> (7 * l)) & 127];
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            const float g = (float)(uint8_t)(grid >> (8 * j));
            v[j] = db * g * ((signs >> j) & 1 ? -1.f : 1.f);
        }
    }
};
GDQ_KERNELS(iq2_xxs)
