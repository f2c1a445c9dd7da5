/* f32, f16, bf16: widened exactly. Mirrors src/cpu/plain.rs.
 *
 * The main kernels take GDQ_PLAIN_VALS (8) elements a thread, read with 16-byte loads (the
 * input must be 16-byte aligned); the launcher sends the last n % 8 elements,
 * and any input that is not 16-byte aligned, to the one-element "tail" kernels. */
#include "common.cuh"

template <int N>
struct plain_f32 {
    /* 16-byte aligned for the wide kernel (a GPU faults on a misaligned
       16-byte load; the launcher sends unaligned inputs to the tail kernel) */
    struct alignas(N % 4 == 0 ? 16 : 4) Block {
        uint32_t v[N];
    };
    static constexpr int QK = N, PARTS = 1, VALS = N;
    static GDQ_FN void decode(const Block *b, int, float *v) {
        if (N % 4 == 0) {
#pragma unroll
            for (int i = 0; i < N; i += 4) {
                const uint4 q = *(const uint4 *)(b->v + i);
                v[i] = gdq_f32_from_bits(q.x);
                v[i + 1] = gdq_f32_from_bits(q.y);
                v[i + 2] = gdq_f32_from_bits(q.z);
                v[i + 3] = gdq_f32_from_bits(q.w);
            }
        } else {
#pragma unroll
            for (int i = 0; i < N; i++) v[i] = gdq_f32_from_bits(b->v[i]);
        }
    }
};

/* 16-bit inputs: WIDEN is gdq_f16_to_f32 or gdq_bf16_to_f32; RAW the output
   type the values already are (decoding into it copies them). */
template <int N, float (*WIDEN)(uint16_t), int RAW>
struct plain_16 {
    static constexpr int RAW_OUT = RAW;
    struct alignas(N % 8 == 0 ? 16 : 2) Block {
        uint16_t v[N];
    };
    static constexpr int QK = N, PARTS = 1, VALS = N;
    static GDQ_FN void decode(const Block *b, int, float *v) {
        if (N % 8 == 0) {
#pragma unroll
            for (int i = 0; i < N; i += 8) {
                const uint4 q = *(const uint4 *)(b->v + i);
                const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    v[i + 2 * j] = WIDEN((uint16_t)(w[j] & 0xffffu));
                    v[i + 2 * j + 1] = WIDEN((uint16_t)(w[j] >> 16));
                }
            }
        } else {
#pragma unroll
            for (int i = 0; i < N; i++) v[i] = WIDEN(b->v[i]);
        }
    }
};

typedef plain_f32<GDQ_PLAIN_VALS> f32;
typedef plain_f32<1> f32_tail;
typedef plain_16<GDQ_PLAIN_VALS, gdq_f16_to_f32, GDQ_OUT_F16> f16;
typedef plain_16<1, gdq_f16_to_f32, GDQ_OUT_F16> f16_tail;
typedef plain_16<GDQ_PLAIN_VALS, gdq_bf16_to_f32, GDQ_OUT_BF16> bf16;
typedef plain_16<1, gdq_bf16_to_f32, GDQ_OUT_BF16> bf16_tail;

GDQ_KERNELS(f32)
GDQ_KERNELS(f32_tail)
GDQ_KERNELS(f16)
GDQ_KERNELS(f16_tail)
GDQ_KERNELS(bf16)
GDQ_KERNELS(bf16_tail)
