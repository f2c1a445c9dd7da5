/*
 * GGML block layouts: the one definition read by the CUDA kernels (nvcc), the
 * host-emulated kernels (g++), and Rust (through bindgen, src/blocks.rs).
 *
 * Every layout is byte-for-byte ggml's (ggml-common.h). Half-precision fields are
 * plain uint16_t bit patterns so that this header needs no CUDA type. How many threads decode
 * one block is a property of each kernel, not of the layout (see common.cuh).
 */
#ifndef GGUF_DEQUANT_BLOCKS_H
#define GGUF_DEQUANT_BLOCKS_H

#include <stdint.h>

#define GDQ_QK_K 256

/* ---- legacy formats: one f16 scale (and min) per 32 weights ---- */

typedef struct {
    uint16_t d;        /* scale */
    uint8_t qs[16];    /* 32 x 4-bit: element j in low nibble of qs[j], j+16 in the high one */
} block_q4_0;

typedef struct {
    uint16_t d;        /* scale */
    uint16_t m;        /* min */
    uint8_t qs[16];    /* as q4_0 */
} block_q4_1;

typedef struct {
    uint16_t d;
    uint8_t qh[4];     /* 5th bit of each of the 32 elements, little-endian u32 */
    uint8_t qs[16];    /* low 4 bits, as q4_0 */
} block_q5_0;

typedef struct {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[16];
} block_q5_1;

typedef struct {
    uint16_t d;
    int8_t qs[32];
} block_q8_0;

/* q1_0: 128 signs, +d for a set bit, -d for a clear one (bit j%8 of qs[j/8]) */
typedef struct {
    uint16_t d;
    uint8_t qs[16];
} block_q1_0;

/* q2_0: 64 x 2-bit codes c in {0..3} -> (c - 1) * d; element j in bits 2*(j%4) of qs[j/4] */
typedef struct {
    uint16_t d;
    uint8_t qs[16];
} block_q2_0;

/* ---- k-quants: 256-weight super-blocks with 6- or 8-bit sub-block scales ---- */

typedef struct {
    uint8_t scales[16]; /* low nibble: scale, high nibble: min, per 16 weights */
    uint8_t qs[64];     /* 2-bit quants */
    uint16_t d;         /* super-block scale for the scales */
    uint16_t dmin;      /* super-block scale for the mins */
} block_q2_K;

typedef struct {
    uint8_t hmask[32];  /* high bit of each quant (set: no -4 offset) */
    uint8_t qs[64];     /* low 2 bits */
    uint8_t scales[12]; /* 16 x 6-bit scales, offset by 32 */
    uint16_t d;
} block_q3_K;

typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12]; /* 8 x (6-bit scale, 6-bit min) */
    uint8_t qs[128];
} block_q4_K;

typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
} block_q5_K;

typedef struct {
    uint8_t ql[128];    /* low 4 bits */
    uint8_t qh[64];     /* high 2 bits */
    int8_t scales[16];  /* 8-bit sub-block scales */
    uint16_t d;
} block_q6_K;

/* ---- i-quants: lattice (grid) codebooks ---- */

typedef struct {
    uint16_t d;
    uint16_t qs[32];    /* per 32 weights: 4 grid bytes, then 4 x 7-bit sign indices + 4-bit scale */
} block_iq2_xxs;

typedef struct {
    uint16_t d;
    uint16_t qs[32];    /* 9-bit grid index, 7-bit sign index */
    uint8_t scales[8];
} block_iq2_xs;

typedef struct {
    uint16_t d;
    uint8_t qs[64];     /* 32 grid indices (low 8 bits), then 32 sign bytes */
    uint8_t qh[8];      /* grid index high bits */
    uint8_t scales[8];
} block_iq2_s;

typedef struct {
    uint16_t d;
    uint8_t qs[96];     /* 64 grid bytes, then 8 x u32 (4 x 7-bit signs + 4-bit scale) */
} block_iq3_xxs;

typedef struct {
    uint16_t d;
    uint8_t qs[64];
    uint8_t qh[8];
    uint8_t signs[32];
    uint8_t scales[4];
} block_iq3_s;

typedef struct {
    uint16_t d;
    uint8_t qs[32];
    uint16_t qh[8];     /* grid high bits, 3-bit scale, delta sign */
} block_iq1_s;

typedef struct {
    uint8_t qs[32];
    uint8_t qh[16];
    uint8_t scales[8];  /* 3-bit scales; the f16 super-block scale is in their top nibbles */
} block_iq1_m;

typedef struct {
    uint16_t d;
    uint8_t qs[16];
} block_iq4_nl;

typedef struct {
    uint16_t d;
    uint16_t scales_h;
    uint8_t scales_l[4];
    uint8_t qs[128];
} block_iq4_xs;

/* ---- ternary ---- */

typedef struct {
    uint8_t qs[48];     /* 5 trits a byte, base-3 fixed point */
    uint8_t qh[4];      /* 4 trits a byte */
    uint16_t d;
} block_tq1_0;

typedef struct {
    uint8_t qs[64];     /* 2-bit codes, value code - 1 */
    uint16_t d;
} block_tq2_0;

/* ---- 4-bit floats ---- */

typedef struct {
    uint8_t e;          /* E8M0 shared exponent */
    uint8_t qs[16];     /* E2M1 codes, as q4_0's nibbles */
} block_mxfp4;

typedef struct {
    uint8_t d[4];       /* UE4M3 scale per 16 weights */
    uint8_t qs[32];     /* E2M1 codes: 8 bytes per 16 weights, low nibbles first */
} block_nvfp4;

/* ---- sizes: ggml's type_size for each ---- */
#ifdef __cplusplus
#define GDQ_SIZE_CHECK(t, n) static_assert(sizeof(t) == (n), #t " must be " #n " bytes")
#else
#define GDQ_SIZE_CHECK(t, n) _Static_assert(sizeof(t) == (n), #t " must be " #n " bytes")
#endif
GDQ_SIZE_CHECK(block_q4_0, 18);
GDQ_SIZE_CHECK(block_q4_1, 20);
GDQ_SIZE_CHECK(block_q5_0, 22);
GDQ_SIZE_CHECK(block_q5_1, 24);
GDQ_SIZE_CHECK(block_q8_0, 34);
GDQ_SIZE_CHECK(block_q1_0, 18);
GDQ_SIZE_CHECK(block_q2_0, 18);
GDQ_SIZE_CHECK(block_q2_K, 84);
GDQ_SIZE_CHECK(block_q3_K, 110);
GDQ_SIZE_CHECK(block_q4_K, 144);
GDQ_SIZE_CHECK(block_q5_K, 176);
GDQ_SIZE_CHECK(block_q6_K, 210);
GDQ_SIZE_CHECK(block_iq2_xxs, 66);
GDQ_SIZE_CHECK(block_iq2_xs, 74);
GDQ_SIZE_CHECK(block_iq2_s, 82);
GDQ_SIZE_CHECK(block_iq3_xxs, 98);
GDQ_SIZE_CHECK(block_iq3_s, 110);
GDQ_SIZE_CHECK(block_iq1_s, 50);
GDQ_SIZE_CHECK(block_iq1_m, 56);
GDQ_SIZE_CHECK(block_iq4_nl, 18);
GDQ_SIZE_CHECK(block_iq4_xs, 136);
GDQ_SIZE_CHECK(block_tq1_0, 54);
GDQ_SIZE_CHECK(block_tq2_0, 66);
GDQ_SIZE_CHECK(block_mxfp4, 17);
GDQ_SIZE_CHECK(block_nvfp4, 36);

#endif
