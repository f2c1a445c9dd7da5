/* PLACEHOLDER: iq4_nl is not written yet. */
#include "common.cuh"

struct iq4_nl {
    typedef block_iq4_nl Block;
    static constexpr int QK = 32, PARTS = 1, VALS = QK / PARTS;
    static GDQ_FN void decode(const Block *, int, float *v) {
        for (int j = 0; j < VALS; j++) v[j] = gdq_f32_from_bits(0x7fc00000u);
    }
};
GDQ_KERNELS(iq4_nl)
