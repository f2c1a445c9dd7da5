"""``torch.load_file(device="cuda")``: the library's kernels decode into
tensors torch allocates, on torch's current stream; every tensor must equal
the CPU load to the bit. Skipped where torch sees no GPU, unless
``GDQ_REQUIRE_GPU=1`` (the GPU run sets it), where that fails instead.

Also runnable without pytest (``python test_cuda.py``): the GPU machine may
have torch but not pytest. Then it prints one line per check and, with a
model file as argument, the load time against the bus.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

import gguf_dequant
import gguf_dequant.torch
from gguf_writer import write_gguf

FIXTURES = Path(os.environ.get("GDQ_FIXTURES", Path(__file__).resolve().parents[2] / "tests" / "fixtures"))
REAL = FIXTURES / "real-weights.gguf"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


class _Skip(Exception):
    """A check that does not apply on this machine (run without pytest)."""


_STANDALONE = False  # run as a script (below), perhaps where pytest is not installed


def _skip(reason: str) -> None:
    if _STANDALONE:
        raise _Skip(reason)
    import pytest

    pytest.skip(reason)


def _gpu_or_skip() -> None:
    if torch.cuda.is_available():
        return
    if os.environ.get("GDQ_REQUIRE_GPU") == "1":
        raise AssertionError("GDQ_REQUIRE_GPU=1 and torch sees no CUDA device")
    _skip("torch sees no CUDA device")


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bits as integers of its width, on the CPU."""
    return t.cpu().view({4: torch.int32, 2: torch.int16}[t.element_size()])


def _assert_same(what: str, got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, want.shape)
    diff = (_bits(got) != _bits(want)).sum().item()
    assert diff == 0, f"{what}: {diff} of {want.numel()} values differ"


def test_every_tensor_equals_the_cpu_load() -> None:
    _gpu_or_skip()
    for dtype in DTYPES:
        cpu = gguf_dequant.torch.load_file(REAL, dtype=dtype)
        gpu = gguf_dequant.torch.load_file(REAL, device="cuda", dtype=dtype)
        assert list(gpu) == list(cpu)
        for name, t in gpu.items():
            assert t.device.type == "cuda" and t.is_contiguous()
            _assert_same(f"{name} as {dtype}", t, cpu[name])


def test_shards_on_the_gpu_equal_the_cpu_shards() -> None:
    _gpu_or_skip()
    for rank in range(2):
        rule = gguf_dequant.tp_shard(rank, 2, split="cols")
        cpu = gguf_dequant.torch.load_file(REAL, dtype=torch.bfloat16, shard=rule)
        gpu = gguf_dequant.torch.load_file(REAL, device="cuda", dtype=torch.bfloat16, shard=rule)
        for name, t in gpu.items():
            _assert_same(f"{name} rank {rank} of 2", t, cpu[name])


def test_the_load_follows_work_queued_on_torchs_stream() -> None:
    """A kernel queued on torch's stream before the load (a long one) writes
    the memory torch then hands to the load's output: the decode must come
    after it, so the output holds the decoded values, not the kernel's."""
    _gpu_or_skip()
    want = gguf_dequant.torch.load_file(REAL, dtype=torch.float32)
    for _ in range(3):
        big = torch.empty(64 << 20, dtype=torch.float32, device="cuda")
        for _ in range(20):
            big.add_(1.0)  # queued on the current stream, not waited for
        del big  # its memory goes back to torch's cache, reusable by the load at once
        got = gguf_dequant.torch.load_file(REAL, device="cuda", dtype=torch.float32)
        for n, t in got.items():
            _assert_same(f"{n} after queued work", t, want[n])


def test_dequantize_a_cuda_tensor() -> None:
    """Raw blocks already on the GPU decode there, on torch's stream."""
    _gpu_or_skip()
    with gguf_dequant.GGUFFile(REAL) as f:
        for name, info in f.tensors.items():
            if not gguf_dequant.GGML_TYPES[info.type].decodable:
                continue
            blocks = torch.from_numpy(f.raw(name).copy())
            for dtype in DTYPES:
                want = gguf_dequant.dequantize(blocks, info.type, info.shape, dtype)
                got = gguf_dequant.dequantize(blocks.cuda(), info.type, info.shape, dtype)
                assert got.device.type == "cuda"
                _assert_same(f"dequantize {name} as {dtype}", got, want)


def test_empty_tensors_among_others() -> None:
    """Tensors with a zero in their shape load as empty CUDA tensors (the
    driver's cuMemAlloc refuses zero bytes) between tensors that decode."""
    _gpu_or_skip()
    q8_0 = gguf_dequant.GGML_TYPES["q8_0"].id
    block = bytes([0, 0x3C]) + bytes(range(32))  # scale 1.0, quants 0..31
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "empty.gguf"
        write_gguf(path, [
            ("before", q8_0, [32, 2], block * 2),
            ("empty.rows", q8_0, [32, 0], b""),
            ("empty.cols", q8_0, [0, 5], b""),
            ("after", q8_0, [32], block),
        ])
        for dtype in DTYPES:
            cpu = gguf_dequant.torch.load_file(path, dtype=dtype)
            gpu = gguf_dequant.torch.load_file(path, device="cuda", dtype=dtype)
            assert [tuple(t.shape) for t in gpu.values()] == [(2, 32), (0, 32), (5, 0), (32,)]
            for name, t in gpu.items():
                _assert_same(f"{name} as {dtype}", t, cpu[name])
            assert cpu["after"].float().tolist() == list(range(32))


def test_the_threads_cuda_context_is_left_as_it_was() -> None:
    """On one GPU: a thread with no current CUDA context has none after a
    decode by the library (which makes the device's context current while it
    works; the CUDA runtime, torch's current device, reads it). The native
    call is made directly, so that no torch call in between sets one."""
    _gpu_or_skip()
    import ctypes
    import threading

    from gguf_dequant import _native

    cuda = ctypes.CDLL("libcuda.so.1")
    with gguf_dequant.GGUFFile(REAL) as f:
        name, info = next((k, v) for k, v in f.tensors.items() if v.type == "q4_K")
        blocks = torch.from_numpy(f.raw(name).copy())
    want = gguf_dequant.dequantize(blocks, "q4_K", info.shape)
    src = blocks.cuda()
    out = torch.zeros(want.shape, dtype=torch.float32, device="cuda")
    stream = torch.cuda.current_stream().cuda_stream
    torch.cuda.synchronize()
    seen: dict = {}

    def run() -> None:
        try:
            assert cuda.cuCtxSetCurrent(None) == 0
            _native.dequantize_cuda(src.data_ptr(), src.numel(), "q4_K", out.data_ptr(),
                                    out.numel(), "float32", 0, stream)
            ctx = ctypes.c_void_p(1)
            assert cuda.cuCtxGetCurrent(ctypes.byref(ctx)) == 0
            seen["context"] = ctx.value
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            seen["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert "error" not in seen, seen.get("error")
    assert seen["context"] is None, "the decode left a CUDA context current"
    torch.cuda.synchronize()
    _assert_same("dequantize_cuda from a thread", out.cpu(), want)


def test_torchs_current_device_is_left_alone() -> None:
    """With several GPUs: a load or decode onto any device leaves torch's
    current device as it was."""
    _gpu_or_skip()
    n = torch.cuda.device_count()
    if n < 2:
        _skip("one GPU: test_the_threads_cuda_context_is_left_as_it_was covers it")
    with gguf_dequant.GGUFFile(REAL) as f:
        name, info = next((k, v) for k, v in f.tensors.items() if v.type == "q4_K")
        blocks = torch.from_numpy(f.raw(name).copy())
    try:
        for current in range(n):
            torch.cuda.set_device(current)
            for target in range(n):
                gguf_dequant.torch.load_file(REAL, device=f"cuda:{target}", tensors=[name])
                assert torch.cuda.current_device() == current, (current, target)
                gguf_dequant.dequantize(blocks.to(f"cuda:{target}"), "q4_K", info.shape)
                assert torch.cuda.current_device() == current, (current, target)
    finally:
        torch.cuda.set_device(0)


def time_load(path: str) -> None:
    """The load of a model onto the GPU against the pinned host-to-device
    bandwidth applied to its compressed bytes, and against decoding on the
    CPU then copying (what loading on the CPU and ``.to("cuda")`` does)."""
    f = gguf_dequant.GGUFFile(path)
    compressed = sum(t.nbytes for t in f.tensors.values())
    staging = torch.empty(256 << 20, dtype=torch.uint8).pin_memory()
    dev = torch.empty_like(staging, device="cuda")
    best = float("inf")
    for _ in range(4):
        t0 = time.perf_counter()
        dev.copy_(staging, non_blocking=True)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    h2d = staging.numel() / best
    del staging, dev
    for dtype in (torch.bfloat16, torch.float16):
        runs = []
        for _ in range(3):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = gguf_dequant.torch.load_file(path, device="cuda", dtype=dtype)
            torch.cuda.synchronize()
            runs.append(time.perf_counter() - t0)
            del out
        t0 = time.perf_counter()
        cpu = gguf_dequant.torch.load_file(path, dtype=dtype)
        moved = {k: v.to("cuda") for k, v in cpu.items()}
        torch.cuda.synchronize()
        via_cpu = time.perf_counter() - t0
        del cpu, moved
        limit = compressed / h2d
        print(
            f"python load {Path(path).name} as {dtype}: {min(runs):.3f} s on the GPU "
            f"({compressed / 1e6:.1f} MB compressed; bus limit {limit:.3f} s at {h2d / 1e9:.1f} GB/s "
            f"pinned: {min(runs) / limit:.2f}x the limit); CPU decode + .to('cuda') {via_cpu:.3f} s"
        )


def test_op_into_out_and_cuda_graph_capture() -> None:
    """torch.ops.gguf_dequant on CUDA tensors: dequantize and dequantize_into
    equal the CPU decode, and both can be captured in a CUDA graph (no host
    synchronization, memory from torch's graph pool, launched on the capture
    stream): replaying the graph after new blocks are copied into the
    captured input decodes those."""
    _gpu_or_skip()
    import gguf_dequant.ops  # noqa: F401 - registers torch.ops.gguf_dequant

    with gguf_dequant.GGUFFile(REAL) as f:
        names = [n for n, i in f.tensors.items() if i.type in ("q4_K", "q6_K", "iq2_xxs", "q8_0")]
        infos = [f.tensors[n] for n in names]
        raws = [torch.from_numpy(f.raw(n).copy()) for n in names]
    for info, raw in zip(infos, raws):
        for dtype in DTYPES:
            want = gguf_dequant.dequantize(raw, info.type, info.shape, dtype)
            blocks = raw.cuda()
            got = torch.ops.gguf_dequant.dequantize(blocks, info.type_id, list(info.shape), dtype)
            _assert_same(f"op {info.name} {dtype}", got, want)
            out = torch.full(info.shape, float("nan"), dtype=dtype, device="cuda")
            assert gguf_dequant.dequantize(blocks, info.type, out=out) is out
            _assert_same(f"out= {info.name} {dtype}", out, want)
    # capture: one q4_K tensor, decoded by both operators inside the graph
    info, raw = next((i, r) for i, r in zip(infos, raws) if i.type == "q4_K")
    half = raw.numel() // 2 // 144 * 144  # whole blocks: the second half of the tensor's blocks
    other = torch.cat([raw[half:], raw[:half]])
    blocks = raw.cuda()
    into = torch.empty(info.shape, dtype=torch.bfloat16, device="cuda")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm-up outside the capture (module load, first launch)
        torch.ops.gguf_dequant.dequantize(blocks, 12, list(info.shape), torch.bfloat16)
        torch.ops.gguf_dequant.dequantize_into(blocks, 12, into)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        made = torch.ops.gguf_dequant.dequantize(blocks, 12, list(info.shape), torch.bfloat16)
        torch.ops.gguf_dequant.dequantize_into(blocks, 12, into)
    g.replay()
    torch.cuda.synchronize()
    want = gguf_dequant.dequantize(raw, "q4_K", info.shape, torch.bfloat16)
    _assert_same("captured dequantize", made, want)
    _assert_same("captured dequantize_into", into, want)
    blocks.copy_(other.cuda())
    g.replay()
    torch.cuda.synchronize()
    want = gguf_dequant.dequantize(other, "q4_K", info.shape, torch.bfloat16)
    _assert_same("replayed dequantize on new blocks", made, want)
    _assert_same("replayed dequantize_into on new blocks", into, want)


def test_diffusers_layer_on_the_gpu() -> None:
    """A diffusers GGUFLinear on CUDA, patched: its output equals the same
    layer computed with the CPU decode of its weight moved to the GPU."""
    _gpu_or_skip()
    try:
        import gguf
        from diffusers.quantizers.gguf.utils import GGUFLinear, GGUFParameter
    except ImportError:
        _skip("diffusers is not installed")
    import gguf_dequant.diffusers as gd

    with gguf_dequant.GGUFFile(REAL) as f:
        name = next(n for n, i in f.tensors.items() if i.type == "q4_K")
        info = f.tensors[name]
        raw = torch.from_numpy(f.raw(name).copy())
    rows, cols = info.shape
    layer = GGUFLinear(cols, rows, bias=False, compute_dtype=torch.bfloat16)
    layer.weight = GGUFParameter(raw.reshape(rows, -1).cuda(), quant_type=gguf.GGMLQuantizationType.Q4_K)
    x = torch.randn(3, cols, dtype=torch.bfloat16, device="cuda")
    w = gguf_dequant.dequantize(raw, "q4_K", info.shape, torch.bfloat16).cuda()
    with torch.no_grad(), gd.patch():
        got = layer(x)
    _assert_same("GGUFLinear on CUDA", got, torch.nn.functional.linear(x, w))


if __name__ == "__main__":
    checks = (
        test_every_tensor_equals_the_cpu_load,
        test_shards_on_the_gpu_equal_the_cpu_shards,
        test_the_load_follows_work_queued_on_torchs_stream,
        test_dequantize_a_cuda_tensor,
        test_empty_tensors_among_others,
        test_the_threads_cuda_context_is_left_as_it_was,
        test_torchs_current_device_is_left_alone,
        test_op_into_out_and_cuda_graph_capture,
        test_diffusers_layer_on_the_gpu,
    )
    _STANDALONE = True
    failed = skipped = 0
    for fn in checks:
        try:
            fn()
            print(f"PASS {fn.__name__}")
        except _Skip as e:
            skipped += 1
            print(f"SKIP {fn.__name__}: {e}")
        except Exception as e:  # noqa: BLE001 - report every check, then fail
            failed += 1
            print(f"FAIL {fn.__name__}: {type(e).__name__}: {e}")
    for model in sys.argv[1:]:
        time_load(model)
    print(f"{len(checks) - failed - skipped} passed, {skipped} skipped, {failed} failed")
    sys.exit(1 if failed else 0)
