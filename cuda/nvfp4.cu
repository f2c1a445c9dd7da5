/* nvfp4: y = KVALUES_MXFP4[q] * ue4m3(d[s]) / 2, one UE4M3 scale per 16 weights.
   Mirrors src/cpu/nvfp4.rs. */
#include "common.cuh"

/* Half the UE4M3 value of x, exactly (as ggml's ggml_ue4m3_to_fp32): 0 and 0x7F
   give 0, otherwise (8 + man) * 2^(exp - 11), or man * 2^-10 for exp == 0. */
GDQ_FN float nvfp4_ue4m3_to_f32_half(uint8_t x) {
    if (x == 0 || x == 0x7F) return 0.0f;
    const uint32_t exp = (x >> 3) & 0xF;
    const float man = (float)(x & 7);
    return exp == 0 ? man * (1.0f / 1024.0f) : (8.0f + man) * gdq_f32_from_bits((exp + 116) << 23);
}

struct nvfp4 {
    typedef block_nvfp4 Block;
    static constexpr int QK = 64, PARTS = 4, VALS = QK / PARTS;

    /* part s is sub-block s: qs[8s..8s+7], low nibbles first, then high ones */
    static GDQ_FN void decode(const Block *b, int part, float *v) {
        const float d = nvfp4_ue4m3_to_f32_half(b->d[part]);
        const uint8_t *qs = b->qs + 8 * part;
#pragma unroll
        for (int j = 0; j < VALS / 2; j++) {
            v[j] = (float)KVALUES_MXFP4[qs[j] & 0xF] * d;
            v[j + VALS / 2] = (float)KVALUES_MXFP4[qs[j] >> 4] * d;
        }
    }
};
GDQ_KERNELS(nvfp4)
