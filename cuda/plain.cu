/* f32, f16, bf16: one element a "block", widened exactly. Mirrors src/cpu/plain.rs. */
#include "common.cuh"

struct f32 {
    typedef uint32_t Block;
    static constexpr int QK = 1, PARTS = 1, VALS = 1;
    static GDQ_FN void decode(const Block *b, int, float *v) { v[0] = gdq_f32_from_bits(*b); }
};
GDQ_KERNELS(f32)

struct f16 {
    typedef uint16_t Block;
    static constexpr int QK = 1, PARTS = 1, VALS = 1;
    static GDQ_FN void decode(const Block *b, int, float *v) { v[0] = gdq_f16_to_f32(*b); }
};
GDQ_KERNELS(f16)

struct bf16 {
    typedef uint16_t Block;
    static constexpr int QK = 1, PARTS = 1, VALS = 1;
    static GDQ_FN void decode(const Block *b, int, float *v) { v[0] = gdq_bf16_to_f32(*b); }
};
GDQ_KERNELS(bf16)
