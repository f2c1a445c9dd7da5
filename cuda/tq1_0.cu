/* tq1_0: y = (t - 1) * d, t a trit stored base-3 in fixed point, 5 to a byte (4 in
   qh). Mirrors src/cpu/tq1_0.rs. */
#include "common.cuh"

/* 3^n for n < 5, packed in bytes of a constant: an indexed array would be
   dynamically indexed per thread, and live in local memory. */
GDQ_FN uint32_t tq1_0_pow3(int n) { return (uint32_t)(0x511B090301ull >> (8 * n)) & 0xFF; }

/* Trit n of byte, as t - 1 in {-1, 0, 1}: multiplying by 3^n (mod 256) brings
   trit n to the top, and (q * 3) >> 8 reads it. */
GDQ_FN int tq1_0_trit(uint32_t byte, int n) {
    const uint32_t q = (byte * tq1_0_pow3(n)) & 0xFF;
    return (int)((q * 3) >> 8) - 1;
}

struct tq1_0 {
    typedef block_tq1_0 Block;
    static constexpr int QK = 256, PARTS = 16, VALS = QK / PARTS;

    /* parts 0..9: trit p / 2 of qs[16 (p % 2) ..][0..15]  (elements 0..159)
       parts 10..14: trit p - 10 of qs[32..47]          (elements 160..239)
       part 15: element 240 + j is trit j / 4 of qh[j % 4] (elements 240..255) */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const float d = gdq_f16_to_f32(b->d);
        if (part == 15) {
#pragma unroll
            for (int j = 0; j < VALS; j++) {
                v[j] = (float)tq1_0_trit(b->qh[j & 3], j >> 2) * d;
            }
            return;
        }
        const uint8_t *qs = part < 10 ? b->qs + 16 * (part & 1) : b->qs + 32;
        const int n = part < 10 ? part >> 1 : part - 10;
#pragma unroll
        for (int j = 0; j < VALS; j++) {
            v[j] = (float)tq1_0_trit(qs[j], n) * d;
        }
    }
};
GDQ_KERNELS(tq1_0)
