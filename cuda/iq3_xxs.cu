/* iq3_xxs: 256 weights from the 256-entry D4 lattice grid (4 weights an entry).
   qs: 64 grid bytes, then per sub-block of 32 a little-endian u32 of 4 x 7-bit
   sign indices and a 4-bit scale s; y = d * (0.5 + s) * 0.5 * grid[j] * (+-1).
   Mirrors src/cpu/iq3_xxs.rs. */
#include "common.cuh"

struct iq3_xxs {
    typedef block_iq3_xxs Block;
    static constexpr int QK = 256, PARTS = 32, VALS = QK / PARTS;

    /* part = 4 * ib32 + l: group l of sub-block ib32, grid entries qs[2 * part], qs[2 * part + 1] */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const int ib32 = part >> 2, l = part & 3;
        const uint8_t *a = b->qs + 64 + 4 * ib32;
        const uint32_t aux = a[0] | ((uint32_t)a[1] << 8) | ((uint32_t)a[2] << 16) | ((uint32_t)a[3] << 24);
        const float d = gdq_f16_to_f32(b->d);
        const float db = d * (0.5f + (float)(aux >> 28)) * 0.5f; /* ggml's order */
        const uint32_t signs = KSIGNS_IQ2XS[(aux >> (7 * l)) & 127];
        const uint32_t grid[2] = {IQ3XXS_GRID[b->qs[2 * part]], IQ3XXS_GRID[b->qs[2 * part + 1]]};
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = gdq_flip(db * gdq_byte_f32(grid[j >> 2], j & 3), signs, j);
        }
    }
};
GDQ_KERNELS(iq3_xxs)
