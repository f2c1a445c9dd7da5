"""Every tensor of the real-weights fixture through every API, in every dtype,
to the bit against ggml's own dequantized values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gguf_dequant
import gguf_dequant.numpy
import gguf_dequant.torch
from conftest import DTYPES, REAL, REAL_TENSORS, assert_bits_equal, bits, bf16_bits, expected_bits

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
NUMPY_DTYPES = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16)}


def test_fixture_covers_every_decodable_type():
    decodable = {t.name for t in gguf_dequant.GGML_TYPES.values() if t.decodable}
    assert {t.type for t in REAL_TENSORS} == decodable
    assert len(decodable) == 28


def test_expected_bf16_rounding_matches_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    for t in REAL_TENSORS:
        ours = bf16_bits(t.expected_f32)
        theirs = t.expected_f32.astype(ml_dtypes.bfloat16).view(np.uint16)
        assert_bits_equal(t.name, ours, theirs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_load_file(dtype):
    got = gguf_dequant.numpy.load_file(REAL, dtype=dtype)
    assert list(got) == [t.name for t in REAL_TENSORS]
    for t in REAL_TENSORS:
        a = got[t.name]
        if dtype == "bfloat16":
            import ml_dtypes

            assert a.dtype == np.dtype(ml_dtypes.bfloat16)
        else:
            assert a.dtype == NUMPY_DTYPES[dtype]
        assert a.flags.c_contiguous and a.flags.writeable
        assert_bits_equal(f"{t.name} as {dtype}", bits(a), expected_bits(t, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_load_file(dtype):
    got = gguf_dequant.torch.load_file(REAL, device="cpu", dtype=TORCH_DTYPES[dtype])
    assert list(got) == [t.name for t in REAL_TENSORS]
    for t in REAL_TENSORS:
        x = got[t.name]
        assert x.dtype == TORCH_DTYPES[dtype] and x.device.type == "cpu" and x.is_contiguous()
        assert tuple(x.shape) == t.shape
        assert_bits_equal(f"{t.name} as {dtype}", bits(x), expected_bits(t, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_raw_then_dequantize(dtype):
    with gguf_dequant.GGUFFile(REAL) as f:
        for t in REAL_TENSORS:
            info = f.tensors[t.name]
            raw = f.raw(t.name)
            assert raw.dtype == np.uint8 and raw.tobytes() == t.quant
            a = gguf_dequant.dequantize(raw, info.type, info.shape, dtype)
            assert isinstance(a, np.ndarray)
            assert_bits_equal(f"{t.name} as {dtype}", bits(a), expected_bits(t, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dequantize_torch_blocks(dtype):
    for t in REAL_TENSORS:
        blocks = torch.frombuffer(bytearray(t.quant), dtype=torch.uint8)
        x = gguf_dequant.dequantize(blocks, t.type_id, t.shape, TORCH_DTYPES[dtype])
        assert isinstance(x, torch.Tensor) and x.dtype == TORCH_DTYPES[dtype]
        assert_bits_equal(f"{t.name} as {dtype}", bits(x), expected_bits(t, dtype))


def test_dequantize_bytes_and_2d_blocks():
    t = next(t for t in REAL_TENSORS if t.type == "q4_K")
    from_bytes = gguf_dequant.dequantize(t.quant, "Q4_K", t.shape)
    rows = np.frombuffer(t.quant, np.uint8).reshape(t.shape[0], -1)  # gguf-py's layout
    from_rows = gguf_dequant.dequantize(rows, "q4_k", t.shape)
    for a in (from_bytes, from_rows):
        assert_bits_equal(t.name, bits(a), expected_bits(t, "float32"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_get_tensor(dtype):
    with gguf_dequant.GGUFFile(REAL) as f:
        for t in REAL_TENSORS[:5]:
            assert_bits_equal(t.name, bits(f.get_tensor(t.name, dtype)), expected_bits(t, dtype))


def test_bfloat16_without_ml_dtypes_is_uint16_bits(monkeypatch):
    monkeypatch.setattr(gguf_dequant._core, "_bf16_dtype", None)
    got = gguf_dequant.numpy.load_file(REAL, dtype="bfloat16", tensors=["minilm.q6_k"])
    a = got["minilm.q6_k"]
    assert a.dtype == np.uint16
    t = next(t for t in REAL_TENSORS if t.name == "minilm.q6_k")
    assert_bits_equal(t.name, a, expected_bits(t, "bfloat16"))


def test_dtype_spellings():
    import ml_dtypes

    t = REAL_TENSORS[0]
    for spelling in ("bf16", "BFloat16", ml_dtypes.bfloat16, torch.bfloat16):
        a = gguf_dequant.numpy.load_file(REAL, dtype=spelling, tensors=[t.name])[t.name]
        assert_bits_equal(str(spelling), bits(a), expected_bits(t, "bfloat16"))
    for spelling in ("f16", np.float16, np.dtype("float16"), torch.float16):
        a = gguf_dequant.numpy.load_file(REAL, dtype=spelling, tensors=[t.name])[t.name]
        assert a.dtype == np.float16
    x = gguf_dequant.torch.load_file(REAL, dtype="float16", tensors=[t.name])[t.name]
    assert x.dtype == torch.float16


def test_tensors_selects_and_orders():
    names = ["minilm.f32", "minilm.q2_k"]
    got = gguf_dequant.numpy.load_file(REAL, tensors=names)
    assert list(got) == names
    got = gguf_dequant.torch.load_file(REAL, tensors=[])
    assert got == {}


def test_large_decodes_in_pieces_are_whole(tmp_path):
    # Decodes run in pieces of 4 Mi values (to look for Ctrl-C between them):
    # whole rows, or runs of blocks of one long row. Tensors past a piece, in
    # rows, in one row, and a shard of columns, hold every value in its place.
    from gguf_writer import write_gguf

    def q8_0(n: int, seed: int) -> tuple:
        q = np.random.default_rng(seed).integers(-128, 128, n, dtype=np.int8)
        scales = np.full((n // 32, 1), 0x3C00, "<u2").view(np.uint8)  # 1.0
        return np.concatenate([scales, q.view(np.uint8).reshape(-1, 32)], axis=1).tobytes(), q.astype(np.float32)

    rows_blocks, rows_want = q8_0(4096 * 2050, 1)  # 2050 rows of 4096: 3 pieces of rows
    row_blocks, row_want = q8_0((1 << 23) + 64, 2)  # one row: 3 pieces of blocks
    path = tmp_path / "large.gguf"
    write_gguf(path, [("rows", 8, [4096, 2050], rows_blocks), ("row", 8, [(1 << 23) + 64], row_blocks)])
    got = gguf_dequant.numpy.load_file(path)
    assert np.array_equal(got["rows"], rows_want.reshape(2050, 4096))
    assert np.array_equal(got["row"], row_want)
    with gguf_dequant.GGUFFile(path) as f:
        part = f.get_tensor("rows", shard=(None, (1024, 3072)))
        assert np.array_equal(part, rows_want.reshape(2050, 4096)[:, 1024:3072])
        for dtype in ("float32", "bfloat16"):
            whole = gguf_dequant.dequantize(f.raw("row"), "q8_0", ((1 << 23) + 64,), dtype)
            assert np.array_equal(whole.astype(np.float32), row_want)
