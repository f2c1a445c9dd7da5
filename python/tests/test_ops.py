"""The torch operators (torch.ops.gguf_dequant.*) and out=: every type to the
bit, the checks made before anything is written, and torch.compile with
fullgraph=True (no graph break), compiled and eager results identical."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import gguf_dequant
import gguf_dequant.ops  # registers torch.ops.gguf_dequant
from conftest import DTYPES, REAL_TENSORS, assert_bits_equal, bits, expected_bits

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
Q4K = next(t for t in REAL_TENSORS if t.type == "q4_K")


def _blocks(t) -> torch.Tensor:
    return torch.frombuffer(bytearray(t.quant), dtype=torch.uint8)


@pytest.mark.parametrize("dtype", DTYPES)
def test_op_every_type(dtype):
    for t in REAL_TENSORS:
        x = torch.ops.gguf_dequant.dequantize(_blocks(t), t.type_id, list(t.shape), TORCH_DTYPES[dtype])
        assert x.dtype == TORCH_DTYPES[dtype] and x.is_contiguous() and tuple(x.shape) == t.shape
        assert_bits_equal(f"op {t.name} as {dtype}", bits(x), expected_bits(t, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_op_into_and_out_every_type(dtype):
    for t in REAL_TENSORS:
        blocks = _blocks(t)
        # the op: any shape of the right size; a sentinel fill shows every value is written
        out = torch.full((t.shape[0] * t.shape[1],), float("nan"), dtype=TORCH_DTYPES[dtype])
        torch.ops.gguf_dequant.dequantize_into(blocks, t.type_id, out)
        assert_bits_equal(f"dequantize_into {t.name} as {dtype}", bits(out).reshape(t.shape), expected_bits(t, dtype))
        # dequantize(out=) with torch blocks, then numpy blocks, into the same buffer reused
        out2 = torch.empty(t.shape, dtype=TORCH_DTYPES[dtype])
        for _ in range(2):
            assert gguf_dequant.dequantize(blocks, t.type, out=out2) is out2
            assert_bits_equal(f"out= {t.name} as {dtype}", bits(out2), expected_bits(t, dtype))
        np_out = np.full(t.shape, 0xFFFF, dtype=np.uint32 if dtype == "float32" else np.uint16)
        if dtype == "float32":
            np_out = np_out.view(np.float32)
        elif dtype == "float16":
            np_out = np_out.view(np.float16)
        got = gguf_dequant.dequantize(np.frombuffer(t.quant, np.uint8), t.type, t.shape, dtype, out=np_out)
        assert got is np_out
        assert_bits_equal(f"numpy out= {t.name} as {dtype}", bits(np_out), expected_bits(t, dtype))


def test_bfloat16_numpy_out_with_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    out = np.zeros(Q4K.shape, dtype=ml_dtypes.bfloat16)
    gguf_dequant.dequantize(np.frombuffer(Q4K.quant, np.uint8), "q4_K", out=out)
    assert_bits_equal("bf16 out", out.view(np.uint16), expected_bits(Q4K, "bfloat16"))


def _unchanged(out: torch.Tensor, call) -> None:
    """``call`` raises and leaves ``out`` exactly as it was."""
    before = out.clone()
    call()
    assert torch.equal(out.view(torch.int16) if out.element_size() == 2 else out.view(torch.int32),
                       before.view(torch.int16) if out.element_size() == 2 else before.view(torch.int32))


def test_out_errors_before_writing():
    blocks = _blocks(Q4K)
    GGUFError = gguf_dequant.GGUFError
    n = Q4K.shape[0] * Q4K.shape[1]
    good = torch.full(Q4K.shape, 7.0, dtype=torch.bfloat16)

    def raises(exc, match, *args, **kw):
        def call():
            with pytest.raises(exc, match=match):
                gguf_dequant.dequantize(*args, **kw)
        return call

    # wrong size (one element short, one row more), through the op and through dequantize
    short = torch.full((n - 1,), 7.0, dtype=torch.bfloat16)
    _unchanged(short, raises(GGUFError, "length mismatch", blocks, "q4_K", out=short))
    with pytest.raises(GGUFError, match="length mismatch"):
        torch.ops.gguf_dequant.dequantize_into(blocks, 12, short)
    big = torch.full((65, 1536), 7.0, dtype=torch.bfloat16)
    _unchanged(big, raises(GGUFError, "length mismatch", blocks, "q4_K", out=big))
    # shape asked for differs from out's
    _unchanged(good, raises(ValueError, "shape", blocks, "q4_K", (1536, 64), out=good))
    # dtype asked for differs from out's; out of a dtype we do not decode into
    _unchanged(good, raises(ValueError, "differ", blocks, "q4_K", dtype="float32", out=good))
    f64 = torch.zeros(Q4K.shape, dtype=torch.float64)
    _unchanged(f64, raises(ValueError, "float32, float16 or bfloat16", blocks, "q4_K", out=f64))
    # non-contiguous out
    wide = torch.full((64, 3072), 7.0, dtype=torch.bfloat16)
    _unchanged(wide, raises(ValueError, "contiguous", blocks, "q4_K", out=wide[:, ::2]))
    _unchanged(wide, raises(ValueError, "contiguous", blocks, "q4_K", out=wide.t()[:1536].t()))
    # out on another device than the blocks
    meta = torch.empty(Q4K.shape, dtype=torch.bfloat16, device="meta")
    with pytest.raises(ValueError, match="same device"):
        gguf_dequant.dequantize(blocks, "q4_K", out=meta)
    # torch blocks with a numpy out, and numpy blocks with a torch out
    with pytest.raises(TypeError, match="torch tensor"):
        gguf_dequant.dequantize(blocks, "q4_K", out=np.zeros(Q4K.shape, np.float32))
    with pytest.raises(TypeError, match="torch tensor"):
        gguf_dequant.dequantize(blocks.numpy(), "q4_K", out=good)
    # bad type ids and blocks through the op itself
    with pytest.raises(ValueError, match="unknown ggml type id 4"):
        torch.ops.gguf_dequant.dequantize(blocks, 4, list(Q4K.shape), torch.float32)
    with pytest.raises(GGUFError, match="cannot be dequantized"):
        torch.ops.gguf_dequant.dequantize(blocks, 15, list(Q4K.shape), torch.float32)  # q8_K
    with pytest.raises(TypeError, match="uint8"):
        torch.ops.gguf_dequant.dequantize(blocks.view(torch.int8), 12, list(Q4K.shape), torch.float32)
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        torch.ops.gguf_dequant.dequantize(blocks, 12, list(Q4K.shape), torch.int32)
    with pytest.raises(ValueError, match="negative"):
        torch.ops.gguf_dequant.dequantize(blocks, 12, [-64, -1536], torch.float32)
    with pytest.raises(GGUFError, match="multiple of 256"):
        torch.ops.gguf_dequant.dequantize(blocks, 12, [64, 1535], torch.float32)
    # numpy out errors
    q = np.frombuffer(Q4K.quant, np.uint8)
    ro = np.zeros(Q4K.shape, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        gguf_dequant.dequantize(q, "q4_K", out=ro)
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        gguf_dequant.dequantize(q, "q4_K", out=np.zeros(Q4K.shape, np.int32))
    with pytest.raises(ValueError, match="contiguous"):
        gguf_dequant.dequantize(q, "q4_K", out=np.zeros((64, 3072), np.float32)[:, ::2])
    with pytest.raises(GGUFError, match="out holds 98303 elements"):
        gguf_dequant.dequantize(q, "q4_K", out=np.zeros(n - 1, np.float32))
    with pytest.raises(TypeError, match="needs the shape"):
        gguf_dequant.dequantize(q, "q4_K")


def test_non_contiguous_blocks_are_copied_not_misread():
    doubled = torch.from_numpy(np.repeat(np.frombuffer(Q4K.quant, np.uint8), 2))[::2]
    assert not doubled.is_contiguous()
    x = torch.ops.gguf_dequant.dequantize(doubled, 12, list(Q4K.shape), torch.float32)
    assert_bits_equal("strided blocks", bits(x), expected_bits(Q4K, "float32"))


def test_fake_and_meta_give_shapes_and_the_same_errors():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        b = torch.empty(len(Q4K.quant), dtype=torch.uint8)
        x = torch.ops.gguf_dequant.dequantize(b, 12, [64, 1536], torch.bfloat16)
        assert x.shape == (64, 1536) and x.dtype == torch.bfloat16
        with pytest.raises(gguf_dequant.GGUFError, match="length mismatch"):
            torch.ops.gguf_dequant.dequantize(b, 12, [64, 1280], torch.bfloat16)
        # the public function takes the operator (not its CPU shortcut) under a mode
        y = gguf_dequant.dequantize(b, "q4_K", (64, 1536), torch.float16)
        assert type(y).__name__ == "FakeTensor" and y.shape == (64, 1536) and y.dtype == torch.float16
        out = torch.empty(64, 1536)
        assert gguf_dequant.dequantize(b, "q4_K", out=out) is out
    m = torch.ops.gguf_dequant.dequantize(torch.empty(len(Q4K.quant), dtype=torch.uint8, device="meta"),
                                          12, [64, 1536], torch.float16)
    assert m.device.type == "meta" and m.shape == (64, 1536)


class _Graphs:
    """A torch.compile backend that records the graphs dynamo hands it and
    runs them as they are (dynamo's tracing and fake propagation, no codegen)."""

    def __init__(self):
        self.graphs = []

    def __call__(self, gm, example_inputs):
        self.graphs.append(gm)
        return gm.forward


def _ops_in(graphs) -> list:
    return [str(n.target) for g in graphs for n in g.graph.nodes if n.op == "call_function"]


def test_compile_fullgraph_op_and_dequantize():
    blocks = _blocks(Q4K)

    def f(b, scale):
        w = torch.ops.gguf_dequant.dequantize(b, 12, [64, 1536], torch.bfloat16)
        return (w.float() * scale).sum(dim=0)

    def g(b, out):
        gguf_dequant.dequantize(b, "q4_K", out=out)  # the public function, traced through
        return out.float() + 1

    def h(b):
        return gguf_dequant.dequantize(b, "Q4_K", (64, 1536), torch.float16).float() - 1

    rec = _Graphs()
    for fn, args in ((f, (blocks, 2.0)), (g, (blocks, torch.empty(64, 1536, dtype=torch.bfloat16))), (h, (blocks,))):
        torch._dynamo.reset()
        eager = fn(*args)
        compiled = torch.compile(fn, fullgraph=True, backend=rec)(*args)
        assert torch.equal(eager, compiled)
    # one graph per function (fullgraph: a graph break would have raised), each calling our op
    assert len(rec.graphs) == 3
    called = _ops_in(rec.graphs)
    assert called.count("gguf_dequant.dequantize") == 2
    assert called.count("gguf_dequant.dequantize_into") == 1


def test_compile_inductor_identical_to_eager():
    # the default backend (inductor: functionalization of dequantize_into,
    # generated C++ for the rest) gives the same bits as eager
    torch._dynamo.reset()
    blocks = _blocks(Q4K)

    def f(b, x):
        w = torch.ops.gguf_dequant.dequantize(b, 12, [64, 1536], torch.float32)
        out = torch.empty(64, 1536, dtype=torch.bfloat16)
        torch.ops.gguf_dequant.dequantize_into(b, 12, out)
        return x @ w.t(), out

    x = torch.randn(3, 1536)
    e = f(blocks, x)
    c = torch.compile(f, fullgraph=True)(blocks, x)
    assert torch.equal(e[0], c[0]) and torch.equal(e[1], c[1])
    assert_bits_equal("compiled into", bits(c[1]), expected_bits(Q4K, "bfloat16"))


def test_compile_errors_surface_while_tracing():
    torch._dynamo.reset()
    blocks = _blocks(Q4K)

    def f(b):
        return torch.ops.gguf_dequant.dequantize(b, 12, [64, 1280], torch.float32)

    with pytest.raises(Exception, match="length mismatch"):
        torch.compile(f, fullgraph=True, backend=_Graphs())(blocks)


def test_threads_each_into_their_own_out():
    # many threads decode different types into their own buffers at once
    errors = []

    def work(t):
        try:
            out = torch.empty(t.shape, dtype=torch.bfloat16)
            for _ in range(5):
                torch.ops.gguf_dequant.dequantize_into(_blocks(t), t.type_id, out)
                assert (bits(out) == expected_bits(t, "bfloat16")).all(), t.name
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in REAL_TENSORS]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
