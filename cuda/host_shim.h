/*
 * Host shim: lets g++ compile the kernels of this folder unchanged and run them
 * on the CPU over an emulated grid (emulate.cpp).
 *
 * It defines the few CUDA names the kernels use: the qualifiers, the built-in
 * index variables (thread-local, so several emulated launches may run at once
 * on different host threads), and the vector types used for wide stores.
 *
 * The rule this puts on the kernels: each thread's work must depend on nothing
 * but its own indices and the inputs. Threads of a block run one after another
 * here, so a decode kernel must not use __syncthreads, shared memory or warp
 * shuffles (none of which this shim defines, so such a kernel fails to compile).
 */
#ifndef GGUF_DEQUANT_HOST_SHIM_H
#define GGUF_DEQUANT_HOST_SHIM_H

#ifdef __CUDACC__
#error "host_shim.h is for host compilers only"
#endif

#include <stdint.h>
#include <string.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __restrict__ __restrict

struct gdq_dim3 {
    unsigned int x, y, z;
};

extern thread_local gdq_dim3 threadIdx;
extern thread_local gdq_dim3 blockIdx;
extern thread_local gdq_dim3 blockDim;
extern thread_local gdq_dim3 gridDim;

/* 16-byte aligned, as on the GPU: the kernels check every wide access with
   gdq_aligned() (common.cuh), which on the host reports what would fault on a
   GPU instead of performing it. */
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(16) uint4 {
    unsigned int x, y, z, w;
};

/* CUDA's __byte_perm (PTX prmt.b32, default mode): byte i of the result is
   byte (s >> 4i) & 7 of the eight bytes x (0..3) then y (4..7). */
static inline uint32_t __byte_perm(uint32_t x, uint32_t y, uint32_t s) {
    const uint64_t bytes = (uint64_t)y << 32 | x;
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) r |= (uint32_t)(bytes >> (8 * ((s >> (4 * i)) & 7)) & 0xff) << (8 * i);
    return r;
}

#endif
