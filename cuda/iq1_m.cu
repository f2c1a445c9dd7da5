/* PLACEHOLDER: iq1_m is not written yet. */
#include "common.cuh"

struct iq1_m {
    typedef block_iq1_m Block;
    static constexpr int QK = 256, PARTS = 1, VALS = QK / PARTS;
    static GDQ_FN void decode(const Block *, int, float *v) {
        for (int j = 0; j < VALS; j++) v[j] = gdq_f32_from_bits(0x7fc00000u);
    }
};
GDQ_KERNELS(iq1_m)
