#!/usr/bin/env python3
"""Checks an installed gguf-dequant wheel on its own: run by
scripts/wheel-check.sh in a fresh virtual environment (the wheel and numpy
only, no Rust on the PATH, outside the source tree).

    python wheel_check.py FIXTURES_DIR

Imports the package (from the environment, not the source tree), decodes
every tensor of the real-weights fixture (one per type, all 28) with
``numpy.load_file`` in float32, float16 and bfloat16 and with
``dequantize(..., out=)``, and compares every value's bits with ggml's own
dequantized values. With torch installed, the same through
``torch.ops.gguf_dequant.dequantize``. Prints one line; exits 1 on any
difference."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def bf16_bits(f32: np.ndarray) -> np.ndarray:
    b = f32.view(np.uint32).astype(np.uint64)
    rounded = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(f32), ((b >> 16) | 0x40).astype(np.uint16), rounded)


def main() -> int:
    fixtures = Path(sys.argv[1])
    import gguf_dequant
    import gguf_dequant.numpy

    here = Path(gguf_dequant.__file__).resolve()
    if Path(__file__).resolve().parents[1] in here.parents:
        print(f"FAIL: gguf_dequant imported from the source tree ({here})")
        return 1
    manifest = json.loads((fixtures / "manifest.json").read_text())
    expected = (fixtures / "real-weights.expected.gguf").read_bytes()
    got = {d: gguf_dequant.numpy.load_file(fixtures / "real-weights.gguf", dtype=d)
           for d in ("float32", "float16", "bfloat16")}
    bad = []
    with gguf_dequant.GGUFFile(fixtures / "real-weights.gguf") as f:
        for t in manifest["tensors"]:
            shape = tuple(reversed(t["ne_ggml"]))
            want = np.frombuffer(expected, "<f4", t["n_elements"], t["data_offset_in_expected_file"]).reshape(shape)
            wants = {
                "float32": want.view(np.uint32),
                "float16": want.astype(np.float16).view(np.uint16),
                "bfloat16": bf16_bits(want),
            }
            for d, w in wants.items():
                a = got[d][t["name"]]
                if not np.array_equal(a.view(w.dtype), w):
                    bad.append(f"{t['name']} load_file {d}")
            out = np.empty(shape, np.uint16)
            gguf_dequant.dequantize(f.raw(t["name"]), t["ggml_type"], out=out)  # uint16: bfloat16 bits
            if not np.array_equal(out, wants["bfloat16"]):
                bad.append(f"{t['name']} out= bfloat16")
            try:
                import torch
            except ImportError:
                torch = None
            if torch is not None:
                import gguf_dequant.ops  # noqa: F401

                x = torch.ops.gguf_dequant.dequantize(torch.from_numpy(f.raw(t["name"]).copy()), t["type_id"],
                                                      list(shape), torch.bfloat16)
                if not np.array_equal(x.view(torch.int16).numpy().view(np.uint16), wants["bfloat16"]):
                    bad.append(f"{t['name']} torch op")
    types = {t["ggml_type"] for t in manifest["tensors"]}
    if len(types) != 28:
        bad.append(f"the fixture has {len(types)} types, not 28")
    where = f"gguf-dequant {gguf_dequant.__version__} on Python {sys.version.split()[0]}, numpy {np.__version__}"
    if bad:
        print(f"FAIL ({where}): {len(bad)} differ: {bad[:5]}")
        return 1
    print(f"OK ({where}, from {here.parent}): {len(types)} types x 3 dtypes, out= and"
          f"{' the torch op' if 'torch' in sys.modules else ' no torch'}: ggml's values to the bit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
