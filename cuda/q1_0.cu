/* PLACEHOLDER: q1_0 is not written yet. */
#include "common.cuh"

struct q1_0 {
    typedef block_q1_0 Block;
    static constexpr int QK = 128, PARTS = 1, VALS = QK / PARTS;
    static GDQ_FN void decode(const Block *, int, float *v) {
        for (int j = 0; j < VALS; j++) v[j] = gdq_f32_from_bits(0x7fc00000u);
    }
};
GDQ_KERNELS(q1_0)
