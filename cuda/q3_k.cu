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
        /* even offsets in a 2-byte aligned block: read as u16 */
        const uint16_t *qs = (const uint16_t *)(b->qs + (part / 8) * 32 + off);
        const uint16_t *hm = (const uint16_t *)(b->hmask + off);
        const int shift = (part % 8) / 2 * 2;
        const int hbit = part / 2;
        /* four elements a word: byte k of c is q + 4, that is the 2 low bits
           and the high bit (set: no -4) above them */
#pragma unroll
        for (int i = 0; i < VALS / 4; i++) {
            const uint32_t qw = __byte_perm(qs[2 * i], qs[2 * i + 1], 0x5410);
            const uint32_t hw = __byte_perm(hm[2 * i], hm[2 * i + 1], 0x5410);
            const uint32_t c = ((qw >> shift) & 0x03030303u) | (((hw >> hbit) & 0x01010101u) << 2);
#pragma unroll
            for (int k = 0; k < 4; k++) v[4 * i + k] = dl * gdq_byte_f32(c, k, 4);
        }
    }
};
GDQ_KERNELS(q3_k)
