/* q3_k: y = (d * (sc - 32)) * (q_low - (h ? 0 : 4)) per group of 16, q_low a
   2-bit code, h its high bit, sc a 6-bit scale. Layout in src/cpu/q3_k.rs,
   which this mirrors. */
#include "common.cuh"

struct q3_k {
    typedef block_q3_K Block;
    static constexpr int QK = 256, PARTS = 16, VALS = QK / PARTS;

    /* Group g's scale, offset removed: low 4 bits in nibble g / 8 of
       scales[g % 8], top 2 bits at bit 2 * (g / 4) of scales[8 + g % 4]. */
    static GDQ_FN int group_scale(const uint8_t *scales, int g) {
        const int low = (scales[g % 8] >> (4 * (g / 8))) & 0xF;
        const int high = (scales[8 + g % 4] >> (2 * (g / 4))) & 3;
        return (low | (high << 4)) - 32;
    }

    /* part g decodes group g: half g / 8, bit pair (g % 8) / 2, bytes 0..15 or
       16..31; its high bits are bit g / 2 of the same 16 bytes of hmask */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const float dl = gdq_f16_to_f32(b->d) * (float)group_scale(b->scales, part);
        const int off = (part % 2) * 16;
        const uint8_t *qs = b->qs + (part / 8) * 32 + off;
        const uint8_t *hm = b->hmask + off;
        const int shift = (part % 8) / 2 * 2;
        const int bit = 1 << (part / 2);
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            const int q = ((qs[j] >> shift) & 3) - ((hm[j] & bit) ? 0 : 4);
            v[j] = dl * (float)q;
        }
    }
};
GDQ_KERNELS(q3_k)
