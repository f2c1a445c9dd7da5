/* q6_k: y = (d * sc) * (q - 32) per group of 16, q a 6-bit code (4 low bits in
   ql, 2 high bits in qh), sc a signed 8-bit scale. Layout in src/cpu/q6_k.rs,
   which this mirrors. */
#include "common.cuh"

struct q6_k {
    typedef block_q6_K Block;
    static constexpr int QK = 256, PARTS = 16, VALS = QK / PARTS;

    /* part g decodes group g: half g / 8, quarter k = (g % 8) / 2, bytes
       0..15 or 16..31 of the quarter's 32 */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        /* ggml writes d * sc * q: (d * sc) first */
        const float dl = gdq_f16_to_f32(b->d) * (float)b->scales[part];
        const int half = part / 8, k = (part % 8) / 2, off = (part % 2) * 16;
        const uint8_t *ql = b->ql + half * 64 + (k % 2) * 32 + off;
        const uint8_t *qh = b->qh + half * 32 + off;
        const int lshift = (k / 2) * 4, hshift = k * 2;
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            const int q = (((ql[j] >> lshift) & 0xF) | (((qh[j] >> hshift) & 3) << 4)) - 32;
            v[j] = dl * (float)q;
        }
    }
};
GDQ_KERNELS(q6_k)
