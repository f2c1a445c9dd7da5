/* tq2_0: y = (q - 1) * d, q a 2-bit code. Mirrors src/cpu/tq2_0.rs. */
#include "common.cuh"

struct tq2_0 {
    typedef block_tq2_0 Block;
    static constexpr int QK = 256, PARTS = 16, VALS = QK / PARTS;

    /* part p: half h = p / 8 of the block (bytes qs[32h..32h+31]), bit pair
       l = (p / 2) % 4, bytes 16 (p % 2) .. of that half */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const float d = gdq_f16_to_f32(b->d);
        const uint8_t *qs = b->qs + 32 * (part >> 3) + 16 * (part & 1);
        const int shift = 2 * ((part >> 1) & 3);
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = (float)((int)((qs[j] >> shift) & 3) - 1) * d;
        }
    }
};
GDQ_KERNELS(tq2_0)
