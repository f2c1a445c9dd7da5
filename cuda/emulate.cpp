/*
 * The host-emulated grid: the kernels of all.cu compiled by the host C++
 * compiler and run on the CPU, one thread after another, exactly as a launch
 * of the same geometry would run them on the GPU (see the rule in host_shim.h).
 */
#include "host_shim.h"

thread_local gdq_dim3 threadIdx;
thread_local gdq_dim3 blockIdx;
thread_local gdq_dim3 blockDim;
thread_local gdq_dim3 gridDim;

#include "all.cu"

namespace {

template <class T>
void run_grid(void (*kernel)(const uint8_t *, T *, uint64_t), const uint8_t *src, T *dst, uint64_t n_blocks,
              uint32_t grid, uint32_t threads) {
    gridDim = {grid, 1, 1};
    blockDim = {threads, 1, 1};
    for (uint32_t b = 0; b < grid; b++) {
        for (uint32_t t = 0; t < threads; t++) {
            blockIdx = {b, 0, 0};
            threadIdx = {t, 0, 0};
            kernel(src, dst, n_blocks);
        }
    }
}

}  // namespace

extern "C" {

/* Threads per block of a type's kernels, or 0 when there are none. */
uint32_t gdq_kernel_parts(uint32_t type_id) {
    switch (type_id) {
#define GDQ_FORMAT(name, id) \
    case id:                 \
        return name::PARTS;
#include "formats.def"
#undef GDQ_FORMAT
        default:
            return 0;
    }
}

/* Elements per block as the kernels see them (1 for f32/f16/bf16), or 0. */
uint32_t gdq_kernel_qk(uint32_t type_id) {
    switch (type_id) {
#define GDQ_FORMAT(name, id) \
    case id:                 \
        return name::QK;
#include "formats.def"
#undef GDQ_FORMAT
        default:
            return 0;
    }
}

/* Runs gdq_<type>_<out> over a grid x threads launch. out: 0 f32, 1 f16, 2 bf16.
   Returns 0, or -1 for a type or output without a kernel. */
int gdq_emulate_launch(uint32_t type_id, uint32_t out, const uint8_t *src, void *dst, uint64_t n_blocks,
                       uint32_t grid, uint32_t threads) {
    switch (type_id) {
#define GDQ_FORMAT(name, id)                                                                    \
    case id:                                                                                    \
        switch (out) {                                                                          \
            case 0:                                                                             \
                run_grid(gdq_##name##_f32, src, (float *)dst, n_blocks, grid, threads);         \
                return 0;                                                                       \
            case 1:                                                                             \
                run_grid(gdq_##name##_f16, src, (uint16_t *)dst, n_blocks, grid, threads);      \
                return 0;                                                                       \
            case 2:                                                                             \
                run_grid(gdq_##name##_bf16, src, (uint16_t *)dst, n_blocks, grid, threads);     \
                return 0;                                                                       \
            default:                                                                            \
                return -1;                                                                      \
        }
#include "formats.def"
#undef GDQ_FORMAT
        default:
            return -1;
    }
}

}  // extern "C"
