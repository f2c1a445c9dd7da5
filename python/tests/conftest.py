"""Shared fixtures: the repository's real-weights test data (ggml's own
quantized blocks and ggml's own dequantized values), and small synthetic files."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gguf_writer import write_gguf  # noqa: E402

FIXTURES = Path(os.environ.get("GDQ_FIXTURES", Path(__file__).resolve().parents[2] / "tests" / "fixtures"))
REAL = FIXTURES / "real-weights.gguf"
DTYPES = ["float32", "float16", "bfloat16"]


@dataclass
class RealTensor:
    name: str
    type: str
    type_id: int
    ne: List[int]
    offset: int
    quant: bytes
    expected_f32: np.ndarray  # ggml's to_float output, row-major shape

    @property
    def shape(self):
        return tuple(reversed(self.ne))


def _load_real() -> List[RealTensor]:
    """The tensors of the fixture located through the manifest's byte offsets
    (independently of the reader under test), as tests/common/mod.rs does."""
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    quant = REAL.read_bytes()
    expected = (FIXTURES / "real-weights.expected.gguf").read_bytes()
    out = []
    for t in manifest["tensors"]:
        n = t["n_elements"]
        q0, qn = t["data_offset_in_file"], t["quant_bytes"]
        e0 = t["data_offset_in_expected_file"]
        ne = t["ne_ggml"]
        f32 = np.frombuffer(expected, dtype="<f4", count=n, offset=e0).reshape(tuple(reversed(ne)))
        out.append(RealTensor(t["name"], t["ggml_type"], t["type_id"], ne, q0, quant[q0:q0 + qn], f32))
    return out


REAL_TENSORS = _load_real()


def bf16_bits(f32: np.ndarray) -> np.ndarray:
    """f32 values rounded to nearest even into bfloat16 bits (NaNs kept, quieted)."""
    b = f32.view(np.uint32).astype(np.uint64)
    rounded = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(f32)
    return np.where(nan, ((b >> 16) | 0x40).astype(np.uint16), rounded)


def expected_bits(t: RealTensor, dtype: str) -> np.ndarray:
    """What a decode into ``dtype`` must hold, as raw bits."""
    if dtype == "float32":
        return t.expected_f32.view(np.uint32)
    if dtype == "float16":
        return t.expected_f32.astype(np.float16).view(np.uint16)
    return bf16_bits(t.expected_f32)


def bits(x) -> np.ndarray:
    """The raw bits of a numpy array or a torch tensor (any of our dtypes)."""
    if not isinstance(x, np.ndarray):
        import torch

        x = x.view(torch.int32 if x.element_size() == 4 else torch.int16).numpy()
    return x.view(np.uint32 if x.dtype.itemsize == 4 else np.uint16)


def assert_bits_equal(what: str, got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape}, want {want.shape}"
    diff = np.flatnonzero(got != want)
    assert diff.size == 0, (
        f"{what}: {diff.size} of {got.size} values differ; first at {diff[0]}: "
        f"got {got.reshape(-1)[diff[0]]:#x}, want {want.reshape(-1)[diff[0]]:#x}"
    )


# Llama-named tensors of real blocks (taken from the fixture, any whole blocks
# are valid), with sizes that split unevenly over 2 ranks: 23 rows, and
# ne0 = 1280 columns (5 blocks of 256, 10 of 128, 40 of 32).
LLAMA_LAYOUT = [
    ("token_embd.weight", "q4_k", [1280, 23]),
    ("blk.0.attn_norm.weight", "f32", [1280]),
    ("blk.0.attn_q.weight", "q4_k", [1280, 23]),
    ("blk.0.attn_k.weight", "iq2_xxs", [1280, 23]),
    ("blk.0.attn_v.weight", "q6_k", [1280, 23]),
    ("blk.0.attn_output.weight", "q8_0", [1280, 23]),
    ("blk.0.ffn_gate.weight", "mxfp4", [1280, 23]),
    ("blk.0.ffn_up.weight", "iq4_xs", [1280, 23]),
    ("blk.0.ffn_down.weight", "q5_k", [1280, 23]),
    ("blk.1.attn_q.weight", "tq1_0", [1280, 2, 23]),
    ("blk.1.ffn_down.weight", "q1_0", [1280, 23]),
    ("blk.1.attn_output.weight", "nvfp4", [1280, 23]),
    ("blk.1.ffn_norm.weight", "bf16", [1280]),
    ("output.weight", "iq3_s", [1280, 23]),
]


def write_llama_like(path: Path) -> Dict[str, tuple]:
    """A small llama-named GGUF file of real blocks; returns name -> row-major shape."""
    from gguf_dequant import GGML_TYPES

    by_suffix = {t.name.split(".", 1)[1]: t for t in REAL_TENSORS}
    tensors = []
    for name, suffix, ne in LLAMA_LAYOUT:
        src = by_suffix[suffix]
        ty = GGML_TYPES[src.type]
        n = int(np.prod(ne))
        nbytes = n // ty.block_size * ty.block_bytes
        data = (src.quant * (nbytes // len(src.quant) + 1))[:nbytes]
        tensors.append((name, src.type_id, ne, data))
    write_gguf(path, tensors, metadata=[("general.architecture", 8, "llama")])
    return {name: tuple(reversed(ne)) for name, _, ne in LLAMA_LAYOUT}


@pytest.fixture(scope="session")
def llama_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("llama") / "llama-like.gguf"
    write_llama_like(path)
    return path
