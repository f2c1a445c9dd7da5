/*
 * What every decode kernel shares: number conversions, output stores, and the
 * one kernel body that walks a tensor's blocks.
 *
 * A format is a struct with
 *     typedef block_xxx Block;
 *     static constexpr int QK;      elements per block
 *     static constexpr int PARTS;   threads per block (as src/formats.rs lists it;
 *                                   the generated all.cu checks)
 *     static constexpr int VALS;    QK / PARTS: elements each thread writes
 *     static GDQ_FN void decode(const Block *b, int part, float *v);
 * where decode writes elements [part * VALS, (part + 1) * VALS) of the block, in
 * order, as f32 computed exactly as ggml's dequantize_row_* computes them.
 * GDQ_KERNELS(name) then defines the three entry points gdq_<name>_{f32,f16,bf16}.
 *
 * Kernels are compiled by nvcc for the GPU and by g++ (host_shim.h) for the
 * host-emulated grid, so they use only what the shim defines.
 */
#ifndef GGUF_DEQUANT_COMMON_CUH
#define GGUF_DEQUANT_COMMON_CUH

#ifdef __CUDACC__
#include <cuda_fp16.h>
#define GDQ_TABLE static __device__ const
#else
#include "host_shim.h"
#endif

#include <stdint.h>

#include "blocks.h"
#include "geometry.h" /* GDQ_THREADS, GDQ_PLAIN_VALS: written by build.rs from src/formats.rs */
#include "tables.h"

#define GDQ_FN __device__ __forceinline__

/* ---- bit casts ---- */

GDQ_FN float gdq_f32_from_bits(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, 4);
    return f;
#endif
}

GDQ_FN uint32_t gdq_bits_from_f32(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
#endif
}

/* ---- input conversions (exact) ---- */

/* Byte k (0..3) of w, minus `bias`, as an f32, exactly. A permute (PRMT)
   puts the byte under the exponent of 2^23, making the f32 2^23 + byte, and
   one f32 subtraction of 2^23 + bias leaves byte - bias (an integer far below
   2^23: exact). It takes the integer pipe once where a shift, a mask, an
   add and an integer-to-float conversion would take it three times and the
   conversion unit once. */
GDQ_FN float gdq_byte_f32(uint32_t w, int k, int bias = 0) {
    return gdq_f32_from_bits(__byte_perm(w, 0x4B000000u, 0x7650u | (uint32_t)k)) - (8388608.0f + (float)bias);
}

/* x negated where bit j of `signs` is set: exactly x * -1 (a NaN may differ
   in its sign, which no contract covers), by the sign bit alone. */
GDQ_FN float gdq_flip(float x, uint32_t signs, int j) {
    return gdq_f32_from_bits(gdq_bits_from_f32(x) ^ ((signs << (31 - j)) & 0x80000000u));
}

/* IEEE half bits to f32, exactly (every half is an f32). On the GPU one
   conversion instruction (cvt.f32.f16) does it; a NaN may come out as the
   canonical NaN there, which the contract allows (docs/GPU.md: NaN payloads
   are not part of it on the GPU). On the host, integer arithmetic that keeps
   the payload, quieted, as x86's F16C and ggml do. */
GDQ_FN float gdq_f16_to_f32(uint16_t h) {
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half(h));
#else
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    if (exp == 0x1fu) {
        return gdq_f32_from_bits(sign | 0x7f800000u | (man << 13) | (man ? 0x400000u : 0u));
    }
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in f32 */
        const float mag = (float)man * 5.9604644775390625e-8f;
        return gdq_f32_from_bits(sign | gdq_bits_from_f32(mag));
    }
    return gdq_f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
#endif
}

GDQ_FN float gdq_bf16_to_f32(uint16_t h) { return gdq_f32_from_bits((uint32_t)h << 16); }

/* ---- output conversions: round to nearest even ---- */

/* f32 bits rounded so that their top 16 bits are the bf16: to nearest even,
   and a NaN quieted with its sign and top payload kept. */
GDQ_FN uint32_t gdq_bf16_word(float f) {
    const uint32_t u = gdq_bits_from_f32(f);
    return (u & 0x7fffffffu) > 0x7f800000u ? (u | 0x400000u) : u + 0x7fffu + ((u >> 16) & 1u);
}

GDQ_FN uint16_t gdq_f32_to_bf16(float f) { return (uint16_t)(gdq_bf16_word(f) >> 16); }

GDQ_FN uint16_t gdq_f32_to_f16(float f) {
    const uint32_t u = gdq_bits_from_f32(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) {
        return (uint16_t)(sign | 0x7e00u | ((abs >> 13) & 0x3ffu)); /* NaN, quieted */
    }
#ifdef __CUDA_ARCH__
    return __half_as_ushort(__float2half_rn(f));
#else
    if (abs >= 0x477ff000u) {
        return (uint16_t)(sign | 0x7c00u); /* rounds to or past infinity */
    }
    if (abs < 0x38800000u) {
        /* below the smallest normal half: the result is a multiple of 2^-24.
           Adding 0.5 puts the rounding point at the f32 mantissa's last place,
           where the FPU rounds to nearest even, exactly once. */
        const float a = gdq_f32_from_bits(abs) + 0.5f;
        return (uint16_t)(sign | (gdq_bits_from_f32(a) - 0x3f000000u));
    }
    /* normal: rebias the exponent, round the 13 dropped bits to nearest even */
    const uint32_t odd = (abs >> 13) & 1u;
    const uint32_t r = abs + 0xfffu + odd - 0x38000000u;
    return (uint16_t)(sign | (r >> 13));
#endif
}

/* Two values packed into a word, a in the low half, each rounded to nearest
   even. On GPUs since sm_80 one conversion instruction (cvt.rn.{bf16,f16}x2.f32:
   its first source goes to the high half) converts both; it gives a NaN's
   result as the canonical NaN, which the contract allows (docs/GPU.md: NaN
   payloads are not part of it on the GPU). Elsewhere, each value's rounding. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
GDQ_FN uint32_t gdq_pack_bf16x2(float a, float b) {
    uint32_t d;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(b), "f"(a));
    return d;
}
GDQ_FN uint32_t gdq_pack_f16x2(float a, float b) {
    uint32_t d;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(b), "f"(a));
    return d;
}
#else
GDQ_FN uint32_t gdq_pack_bf16x2(float a, float b) {
    return (gdq_bf16_word(a) >> 16) | (gdq_bf16_word(b) & 0xffff0000u);
}
GDQ_FN uint32_t gdq_pack_f16x2(float a, float b) {
    return gdq_f32_to_f16(a) | ((uint32_t)gdq_f32_to_f16(b) << 16);
}
#endif

/* ---- alignment, as the GPU enforces it ----
   A GPU faults on a misaligned access (the launch fails with
   CUDA_ERROR_MISALIGNED_ADDRESS); a host CPU would not, so without this the
   emulated grid could not fail where the GPU would. Every access wider than a
   byte goes through a pointer checked here: on the GPU the check is nothing;
   on the host a misaligned pointer records the fault (the emulator then
   reports the launch as failed) and the thread skips the access. */
#ifdef __CUDA_ARCH__
#define gdq_aligned(p, n) true
#else
extern thread_local int gdq_fault;
GDQ_FN bool gdq_aligned(const void *p, uintptr_t n) {
    if ((uintptr_t)p % n == 0) return true;
    gdq_fault = 1;
    return false;
}
#endif

/* ---- output stores ---- */

/* Output types, by a code that a format whose values are already of that type
   names in its RAW_OUT (see gdq_raw below). */
enum { GDQ_OUT_F32 = 1, GDQ_OUT_F16 = 2, GDQ_OUT_BF16 = 3 };

struct gdq_out_f32 {
    typedef float T;
    static constexpr int ID = GDQ_OUT_F32;
    template <int N>
    static GDQ_FN void store(float *dst, const float *v) {
        if (!gdq_aligned(dst, N % 4 == 0 ? 16 : 4)) return;
        if (N % 4 == 0) {
#pragma unroll
            for (int i = 0; i < N; i += 4) {
                float4 q;
                q.x = v[i];
                q.y = v[i + 1];
                q.z = v[i + 2];
                q.w = v[i + 3];
                *(float4 *)(dst + i) = q;
            }
        } else {
#pragma unroll
            for (int i = 0; i < N; i++) dst[i] = v[i];
        }
    }
};

/* 16-bit outputs: CONV converts one value, PACK two into a word (the first
   in its low half). */
template <uint16_t (*CONV)(float), uint32_t (*PACK)(float, float), int OUT_ID>
struct gdq_out_16 {
    typedef uint16_t T;
    static constexpr int ID = OUT_ID;
    /* N values that are already of the output type: copied bit for bit. */
    template <int N>
    static GDQ_FN void copy(uint16_t *dst, const uint16_t *src) {
        if (N % 8 == 0) {
            if (!gdq_aligned(dst, 16) || !gdq_aligned(src, 16)) return;
#pragma unroll
            for (int i = 0; i < N; i += 8) *(uint4 *)(dst + i) = *(const uint4 *)(src + i);
        } else {
            if (!gdq_aligned(dst, 2) || !gdq_aligned(src, 2)) return;
#pragma unroll
            for (int i = 0; i < N; i++) dst[i] = src[i];
        }
    }
    template <int N>
    static GDQ_FN void store(uint16_t *dst, const float *v) {
        if (!gdq_aligned(dst, N % 8 == 0 ? 16 : 2)) return;
        if (N % 8 == 0) {
#pragma unroll
            for (int i = 0; i < N; i += 8) {
                uint4 q;
                q.x = PACK(v[i], v[i + 1]);
                q.y = PACK(v[i + 2], v[i + 3]);
                q.z = PACK(v[i + 4], v[i + 5]);
                q.w = PACK(v[i + 6], v[i + 7]);
                *(uint4 *)(dst + i) = q;
            }
        } else {
#pragma unroll
            for (int i = 0; i < N; i++) dst[i] = CONV(v[i]);
        }
    }
};

typedef gdq_out_16<gdq_f32_to_f16, gdq_pack_f16x2, GDQ_OUT_F16> gdq_out_f16;
typedef gdq_out_16<gdq_f32_to_bf16, gdq_pack_bf16x2, GDQ_OUT_BF16> gdq_out_bf16;

/* A format's RAW_OUT: the output type its blocks already hold (f16 and bf16
   tensors), or 0. Decoding into that type copies the bits, so that the output
   is the input exactly (a signalling NaN stays one: widening would quiet it). */
template <class F, class = void>
struct gdq_raw {
    static constexpr int out = 0;
};
template <class F>
struct gdq_raw<F, decltype((void)F::RAW_OUT)> {
    static constexpr int out = F::RAW_OUT;
};

/* ---- the kernel body ---- */

/* Grid-stride over (block, part) pairs with 64-bit indices: any grid covers any
   tensor, and tensors past 2^31 elements index correctly. Thread t writes the
   VALS elements starting at t * VALS, so neighbouring threads write
   neighbouring 16-byte chunks. */
template <class Fmt, class Out>
GDQ_FN void gdq_run(const uint8_t *__restrict__ src, typename Out::T *__restrict__ dst, uint64_t n_blocks) {
    static_assert(Fmt::PARTS * Fmt::VALS == Fmt::QK, "parts must tile the block");
    const typename Fmt::Block *blocks = (const typename Fmt::Block *)src;
    const uint64_t n_work = n_blocks * (uint64_t)Fmt::PARTS;
    const uint64_t stride = (uint64_t)gridDim.x * blockDim.x;
    for (uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; t < n_work; t += stride) {
        const uint64_t ib = t / Fmt::PARTS;
        const int part = (int)(t - ib * Fmt::PARTS);
        if (!gdq_aligned(blocks + ib, alignof(typename Fmt::Block))) return;
        if constexpr (gdq_raw<Fmt>::out == Out::ID) {
            Out::template copy<Fmt::VALS>(dst + t * Fmt::VALS, (const uint16_t *)(blocks + ib) + part * Fmt::VALS);
        } else {
            float v[Fmt::VALS];
            Fmt::decode(blocks + ib, part, v);
            Out::template store<Fmt::VALS>(dst + t * Fmt::VALS, v);
        }
    }
}

#define GDQ_KERNELS(name)                                                                        \
    extern "C" __global__ void __launch_bounds__(GDQ_THREADS)                                    \
        gdq_##name##_f32(const uint8_t *__restrict__ src, float *__restrict__ dst, uint64_t n) { \
        gdq_run<name, gdq_out_f32>(src, dst, n);                                                 \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(GDQ_THREADS)                                    \
        gdq_##name##_f16(const uint8_t *__restrict__ src, uint16_t *__restrict__ dst, uint64_t n) { \
        gdq_run<name, gdq_out_f16>(src, dst, n);                                                 \
    }                                                                                            \
    extern "C" __global__ void __launch_bounds__(GDQ_THREADS)                                    \
        gdq_##name##_bf16(const uint8_t *__restrict__ src, uint16_t *__restrict__ dst, uint64_t n) { \
        gdq_run<name, gdq_out_bf16>(src, dst, n);                                                \
    }

#endif
