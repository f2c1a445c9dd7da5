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
thread_local int gdq_fault;

#include "all.cu"

namespace {

/* Runs a launch; returns whether a thread made an access the GPU would fault on. */
template <class T>
bool run_grid(void (*kernel)(const uint8_t *, T *, uint64_t), const uint8_t *src, T *dst, uint64_t n_blocks,
              uint32_t grid, uint32_t threads) {
    gdq_fault = 0;
    gridDim = {grid, 1, 1};
    blockDim = {threads, 1, 1};
    for (uint32_t b = 0; b < grid; b++) {
        for (uint32_t t = 0; t < threads; t++) {
            blockIdx = {b, 0, 0};
            threadIdx = {t, 0, 0};
            kernel(src, dst, n_blocks);
        }
    }
    return gdq_fault != 0;
}

/* Runs kernel K, whose output elements are T, over a grid. */
template <class T, void (*K)(const uint8_t *, T *, uint64_t)>
bool run(const uint8_t *src, void *dst, uint64_t n_blocks, uint32_t grid, uint32_t threads) {
    return run_grid(K, src, (T *)dst, n_blocks, grid, threads);
}

struct Entry {
    const char *symbol;
    bool (*run)(const uint8_t *, void *, uint64_t, uint32_t, uint32_t);
};

/* Every kernel of the image by its symbol, as the GPU's module lists them:
   the launcher looks kernels up by the same names on both. */
#define GDQ_ENTRIES(name)                                    \
    {"gdq_" #name "_f32", run<float, gdq_##name##_f32>},     \
        {"gdq_" #name "_f16", run<uint16_t, gdq_##name##_f16>}, \
        {"gdq_" #name "_bf16", run<uint16_t, gdq_##name##_bf16>},
const Entry ENTRIES[] = {
#define GDQ_FORMAT(name, id, parts) GDQ_ENTRIES(name)
#define GDQ_TAIL(name, id) GDQ_ENTRIES(name)
#include "formats.def"
#undef GDQ_FORMAT
#undef GDQ_TAIL
};

}  // namespace

extern "C" {

/* Runs the kernel named `symbol` over a grid x threads launch. Returns 0; -1
   where the image has no kernel of that name; -2 where a thread made a
   misaligned access (on a GPU: CUDA_ERROR_MISALIGNED_ADDRESS). */
int gdq_emulate_launch(const char *symbol, const uint8_t *src, void *dst, uint64_t n_blocks, uint32_t grid,
                       uint32_t threads) {
    for (const Entry &e : ENTRIES) {
        if (strcmp(e.symbol, symbol) == 0) {
            return e.run(src, dst, n_blocks, grid, threads) ? -2 : 0;
        }
    }
    return -1;
}

}  // extern "C"
