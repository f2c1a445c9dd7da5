#!/usr/bin/env python3
"""Generate tests/fixtures/random-blocks.bin: random valid blocks of every type
gguf-py can dequantize, with gguf-py's f32 output for each.

gguf-py's `gguf.quants.dequantize` (PyPI `gguf` 0.19.0) is bit-identical to
ggml's `dequantize_row_*` for every type it supports (checked against ggml
itself on real weights, see tests/fixtures/README.md). Real weights only reach
the blocks a quantizer writes; random bytes reach every code, grid index, sign
pattern and sub-block scale, so these records cross-check our decoders
(tests/random_blocks.rs) where the real-weights fixture cannot.

Usage (from the repository root):

    pip install gguf==0.19.0 numpy
    python3 scripts/gen_random_fixtures.py

The output depends only on the seed below and on gguf-py's arithmetic: the
random bytes come from SplitMix64 (as tests/common/mod.rs's `Rng`), not from
numpy's generators, whose streams may change between numpy versions.

How a block is made valid: its bytes are random, then its half-precision scale
fields (d, dmin, m; iq1_m's f16 scale spread over the top nibbles of its four
u16 scales) are overwritten by a finite f16 of realistic magnitude, |x| in
[1e-4, 1] log-uniform with a random sign, sometimes an f16 subnormal or a
signed zero. mxfp4's E8M0 exponent is kept in 100..150, plus a few edge values
that still give finite output (0 and 1 take ggml's subnormal path). nvfp4's
four UE4M3 scales are bytes in 0..0x7e (0x7f is UE4M3's NaN, which ggml decodes
as 0). f32/f16/bf16 tensors hold finite values: normal ones of every exponent,
subnormals, and signed zeros. q1_0 and q2_0 are not here: gguf-py has no
decoder for them.

File format (all integers little-endian, no padding):

    file   = magic "GDQRB001" (8 bytes), u32 n_records, record * n_records
    record = u32 type_id           ggml type id
             u32 name_len, name    ggml type name (ASCII), a check on the id
             u32 n_blocks          blocks of the type (elements for f32/f16/bf16)
             u64 n_elems           n_blocks * elements per block
             u64 n_bytes           n_blocks * bytes per block
             u8  quant[n_bytes]    the blocks
             f32 expected[n_elems] gguf-py's dequantized values
"""

import importlib.metadata
import pathlib
import struct

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf import quants

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "random-blocks.bin"
MAGIC = b"GDQRB001"
SEED = 0x6764715F72616E64  # "gdq_rand"

# Blocks per record for the block formats, elements per record for f32/f16/bf16.
BLOCK_COUNTS = [1, 7, 100]
PLAIN_COUNTS = [1, 7, 100, 5000]

GGUF_VERSION = "0.19.0"


class SplitMix64:
    """The generator of tests/common/mod.rs's `Rng`."""

    M = (1 << 64) - 1

    def __init__(self, seed: int):
        self.s = seed & self.M

    def next_u64(self) -> int:
        self.s = (self.s + 0x9E3779B97F4A7C15) & self.M
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.M
        return z ^ (z >> 31)

    def bytes(self, n: int) -> bytearray:
        out = bytearray()
        while len(out) < n:
            out += self.next_u64().to_bytes(8, "little")
        return out[:n]

    def uniform(self) -> float:
        """A float in [0, 1) from the top 53 bits."""
        return (self.next_u64() >> 11) / float(1 << 53)

    def below(self, n: int) -> int:
        return self.next_u64() % n


def f16_bits(x: float) -> int:
    return int(np.array([x], dtype=np.float32).astype(np.float16).view(np.uint16)[0])


def scale_f16(rng: SplitMix64) -> int:
    """A finite f16 scale: mostly |x| in [1e-4, 1], sometimes subnormal or zero."""
    sign = 0x8000 if rng.next_u64() & 1 else 0
    r = rng.below(100)
    if r < 4:
        return sign | (1 + rng.below(0x3FF))  # subnormal
    if r < 6:
        return sign  # +-0
    return sign | f16_bits(10.0 ** (-4.0 + 4.0 * rng.uniform()))


def put_u16(block: bytearray, off: int, v: int):
    block[off : off + 2] = v.to_bytes(2, "little")


# Byte offsets of each format's f16 scale fields (cuda/blocks.h).
F16_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
    T.IQ2_XXS: [0],
    T.IQ2_XS: [0],
    T.IQ2_S: [0],
    T.IQ3_XXS: [0],
    T.IQ3_S: [0],
    T.IQ1_S: [0],
    T.IQ4_NL: [0],
    T.IQ4_XS: [0],
    T.TQ1_0: [52],
    T.TQ2_0: [64],
}

# E8M0 exponents beyond 100..150 that still decode to finite values.
MXFP4_EDGE_E = [0, 1, 2, 127, 128, 250]


def make_block(qtype, rng: SplitMix64) -> bytearray:
    size = GGML_QUANT_SIZES[qtype][1]
    b = rng.bytes(size)
    if qtype in F16_FIELDS:
        for off in F16_FIELDS[qtype]:
            put_u16(b, off, scale_f16(rng))
    elif qtype == T.IQ1_M:
        # scales: 4 x u16 at byte 48; nibble k of the f16 is the top nibble of the k-th
        d = scale_f16(rng)
        for k in range(4):
            off = 48 + 2 * k
            sc = int.from_bytes(b[off : off + 2], "little")
            put_u16(b, off, (sc & 0x0FFF) | (((d >> (4 * k)) & 0xF) << 12))
    elif qtype == T.MXFP4:
        b[0] = MXFP4_EDGE_E[rng.below(len(MXFP4_EDGE_E))] if rng.below(10) == 0 else 100 + rng.below(51)
    elif qtype == T.NVFP4:
        for s in range(4):
            b[s] = rng.below(0x7F)
    else:
        raise ValueError(f"no block recipe for {qtype.name}")
    return b


def plain_values(qtype, n: int, rng: SplitMix64) -> bytes:
    """n finite values of f32, f16 or bf16, as their little-endian bytes."""
    width, exp_bits, man_bits = {T.F32: (32, 8, 23), T.F16: (16, 5, 10), T.BF16: (16, 8, 7)}[qtype]
    exp_max = (1 << exp_bits) - 1
    out = bytearray()
    for _ in range(n):
        sign = rng.next_u64() & 1
        r = rng.below(100)
        if r < 10:
            exp, man = 0, 1 + rng.below((1 << man_bits) - 1)  # subnormal
        elif r < 15:
            exp, man = 0, 0  # +-0
        elif r < 65:
            # |x| near 1: the magnitudes weights have
            exp = (exp_max >> 1) - 8 + rng.below(10)
            man = rng.below(1 << man_bits)
        else:
            exp, man = 1 + rng.below(exp_max - 1), rng.below(1 << man_bits)  # any finite normal
        bits = (sign << (width - 1)) | (exp << man_bits) | man
        out += bits.to_bytes(width // 8, "little")
    return bytes(out)


def record(qtype, count: int, rng: SplitMix64) -> bytes:
    qk, size = GGML_QUANT_SIZES[qtype]
    if qtype in (T.F32, T.F16, T.BF16):
        quant = plain_values(qtype, count, rng)
    else:
        quant = b"".join(bytes(make_block(qtype, rng)) for _ in range(count))
    assert len(quant) == count * size
    expected = quants.dequantize(np.frombuffer(quant, dtype=np.uint8), qtype)
    expected = np.ascontiguousarray(expected, dtype=np.float32).reshape(-1)
    assert expected.size == count * qk, (qtype.name, expected.size)
    assert np.isfinite(expected).all(), f"{qtype.name}: non-finite output"
    name = GGML_QUANT_NAMES[qtype].encode()
    head = struct.pack("<II", int(qtype), len(name)) + name + struct.pack("<IQQ", count, expected.size, len(quant))
    return head + quant + expected.astype("<f4").tobytes()


# ggml's type names (ggml.c type_traits), which our registry uses.
GGML_QUANT_NAMES = {
    T.F32: "f32",
    T.F16: "f16",
    T.BF16: "bf16",
    T.Q4_0: "q4_0",
    T.Q4_1: "q4_1",
    T.Q5_0: "q5_0",
    T.Q5_1: "q5_1",
    T.Q8_0: "q8_0",
    T.Q2_K: "q2_K",
    T.Q3_K: "q3_K",
    T.Q4_K: "q4_K",
    T.Q5_K: "q5_K",
    T.Q6_K: "q6_K",
    T.IQ2_XXS: "iq2_xxs",
    T.IQ2_XS: "iq2_xs",
    T.IQ2_S: "iq2_s",
    T.IQ3_XXS: "iq3_xxs",
    T.IQ3_S: "iq3_s",
    T.IQ1_S: "iq1_s",
    T.IQ1_M: "iq1_m",
    T.IQ4_NL: "iq4_nl",
    T.IQ4_XS: "iq4_xs",
    T.TQ1_0: "tq1_0",
    T.TQ2_0: "tq2_0",
    T.MXFP4: "mxfp4",
    T.NVFP4: "nvfp4",
}


def main():
    have = importlib.metadata.version("gguf")
    if have != GGUF_VERSION:
        raise SystemExit(f"need gguf=={GGUF_VERSION} (its decoders were checked against ggml), found {have}")
    rng = SplitMix64(SEED)
    records = []
    for qtype in GGML_QUANT_NAMES:
        counts = PLAIN_COUNTS if qtype in (T.F32, T.F16, T.BF16) else BLOCK_COUNTS
        for count in counts:
            records.append(record(qtype, count, rng))
    data = MAGIC + struct.pack("<I", len(records)) + b"".join(records)
    OUT.write_bytes(data)
    print(f"{OUT.relative_to(ROOT)}: {len(records)} records, {len(data)} bytes")


if __name__ == "__main__":
    main()
