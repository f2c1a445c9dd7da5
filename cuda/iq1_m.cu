/* iq1_m: 256 weights from the 2048-entry ternary grid (-1, 0, 1) plus a shift per
   group. The 4 scale words sc[0..4] (little-endian u16 from scales) carry 3-bit
   scales s and, in their top nibbles, the f16 super-block scale d. Group l of
   sub-block ib: nibble h of qh[2 * ib + l / 2] (3 high grid-index bits, shift sign);
   y = d * (2s + 1) * (grid[j] + delta), delta = -+IQ1S_DELTA.
   Mirrors src/cpu/iq1_m.rs. */
#include "common.cuh"

/* ggml's IQ1S_DELTA: the shift added to every grid value */
#define IQ1S_DELTA 0.125f

struct iq1_m {
    typedef block_iq1_m Block;
    static constexpr int QK = 256, PARTS = 32, VALS = QK / PARTS;

    /* scale word k, from bytes: the block has no 2-byte alignment */
    static GDQ_FN uint32_t sc(const Block *b, int k) {
        return b->scales[2 * k] | ((uint32_t)b->scales[2 * k + 1] << 8);
    }

    /* part = 4 * ib + l: group l (one grid entry) of sub-block ib */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const int ib = part >> 2, l = part & 3;
        const uint32_t d_bits =
            (sc(b, 0) >> 12) | ((sc(b, 1) >> 8) & 0x00F0) | ((sc(b, 2) >> 4) & 0x0F00) | (sc(b, 3) & 0xF000);
        const float d = gdq_f16_to_f32((uint16_t)d_bits);
        const int s = (sc(b, ib >> 1) >> (6 * (ib & 1) + 3 * (l >> 1))) & 7;
        const float dl = d * (float)(2 * s + 1); /* integer factor, one rounding */
        const uint32_t h = b->qh[2 * ib + (l >> 1)] >> (4 * (l & 1));
        const uint64_t grid = IQ1S_GRID[b->qs[part] | ((h & 7) << 8)];
        const float delta = h & 8 ? -IQ1S_DELTA : IQ1S_DELTA;
        /* signed bytes: b ^ 0x80 is b + 128 as an unsigned byte */
        const uint32_t half[2] = {(uint32_t)grid ^ 0x80808080u, (uint32_t)(grid >> 32) ^ 0x80808080u};
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = dl * (gdq_byte_f32(half[j >> 2], j & 3, 128) + delta);
        }
    }
};
GDQ_KERNELS(iq1_m)
