"""Bad inputs raise Python exceptions with the library's messages; nothing
crashes the interpreter."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

import gguf_dequant
import gguf_dequant.numpy
import gguf_dequant.torch
from gguf_dequant import GGUFError, Shard
from conftest import REAL, REAL_TENSORS

Q4K = next(t for t in REAL_TENSORS if t.type == "q4_K")


def test_error_classes():
    assert issubclass(GGUFError, ValueError)
    assert GGUFError.__module__ == "gguf_dequant"


@pytest.mark.parametrize("load", [gguf_dequant.numpy.load_file, gguf_dequant.torch.load_file, gguf_dequant.GGUFFile])
def test_missing_file(load, tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file"):
        load(tmp_path / "missing.gguf")


def test_directory_and_fifo(tmp_path):
    with pytest.raises(OSError, match="not a regular file"):
        gguf_dequant.GGUFFile(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):  # refused at once, never blocks
        gguf_dequant.numpy.load_file(fifo)


@pytest.mark.parametrize("content", [b"", b"GGU", b"not a gguf file at all, just text\n" * 4, b"GGML" + bytes(60)])
def test_not_gguf(content, tmp_path):
    path = tmp_path / "x.gguf"
    path.write_bytes(content)
    with pytest.raises(GGUFError, match="invalid GGUF at byte"):
        gguf_dequant.numpy.load_file(path)


@pytest.mark.parametrize("keep", [10, 24, 200, 1000, 1952 + 100, 1_000_000, REAL.stat().st_size - 1])
def test_truncated_file(keep, tmp_path):
    path = tmp_path / "cut.gguf"
    path.write_bytes(REAL.read_bytes()[:keep])
    with pytest.raises(GGUFError, match="invalid GGUF at byte [0-9]+"):
        gguf_dequant.torch.load_file(path)


def test_file_shrinking_after_open(tmp_path):
    path = tmp_path / "shrinks.gguf"
    shutil.copy(REAL, path)
    for mmap in (True, False):
        f = gguf_dequant.GGUFFile(path, mmap=mmap)
        os.truncate(path, REAL.stat().st_size // 2)
        last = REAL_TENSORS[-1].name
        if mmap:
            # read with pread, not through the mapping: an error, never SIGBUS
            with pytest.raises(GGUFError, match=f"tensor '{last}'.*shorter than when it was opened"):
                f.load(tensors=[last])
            with pytest.raises(GGUFError, match="shrank"):
                f.raw(last)
        else:
            # read into memory when opened: unaffected
            assert f.get_tensor(last).shape == REAL_TENSORS[-1].shape
        f.close()
        shutil.copy(REAL, path)


def test_unknown_tensor():
    with pytest.raises(GGUFError, match="no tensor named 'nope'"):
        gguf_dequant.numpy.load_file(REAL, tensors=["minilm.q4_0", "nope"])
    with pytest.raises(GGUFError, match="no tensor named 'nope'"):
        gguf_dequant.GGUFFile(REAL).raw("nope")
    with pytest.raises(GGUFError, match="no tensor named 'nope'"):
        gguf_dequant.GGUFFile(REAL).get_tensor("nope")
    with pytest.raises(GGUFError, match="nope"):
        gguf_dequant.numpy.load_file(REAL, shard={"nope": Shard(rows=(0, 1))})


@pytest.mark.parametrize("dtype", ["int8", "float64", "q4_0", ""])
def test_bad_dtype(dtype):
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        gguf_dequant.numpy.load_file(REAL, dtype=dtype)
    with pytest.raises((ValueError, TypeError)):
        gguf_dequant.torch.load_file(REAL, dtype=dtype)


def test_bad_dtype_objects():
    with pytest.raises(TypeError):
        gguf_dequant.numpy.load_file(REAL, dtype=object())
    with pytest.raises(ValueError):
        gguf_dequant.torch.load_file(REAL, dtype=torch.int32)


# The names the crate's parser takes (src/types.rs, OutType::NAMES), which
# every refusal of a dtype name lists.
DTYPE_NAMES = "f32, float32, float, f16, float16, half, bf16, bfloat16"


def test_bad_dtype_name_lists_the_names():
    from gguf_dequant import _native

    # one list, in the crate: the extension's, which the message gives whole
    assert ", ".join(n for n, _ in _native.dtype_names()) == DTYPE_NAMES
    message = rf'unknown dtype "fp32": .* \(names: {DTYPE_NAMES}; any case\)'
    q8 = np.zeros(34, np.uint8)
    blocks = torch.zeros(34, dtype=torch.uint8)
    with gguf_dequant.GGUFFile(REAL) as f:
        for call in (
            lambda: gguf_dequant.numpy.load_file(REAL, dtype="fp32"),
            lambda: gguf_dequant.torch.load_file(REAL, dtype="fp32"),
            lambda: f.get_tensor(Q4K.name, dtype="fp32"),
            lambda: gguf_dequant.dequantize(q8, "q8_0", (32,), "fp32"),
            lambda: gguf_dequant.dequantize(blocks, "q8_0", (32,), "fp32"),
            lambda: _native.dequantize(q8, "q8_0", [32], "fp32"),
            lambda: _native.parse_dtype("fp32"),
        ):
            with pytest.raises(ValueError, match=message):
                call()
    # the name of a numpy or torch dtype that is none of them, so named
    with pytest.raises(ValueError, match=rf'unknown dtype "float64": .*{DTYPE_NAMES}'):
        gguf_dequant.numpy.load_file(REAL, dtype=np.float64)
    with pytest.raises(ValueError, match=rf'unknown dtype "int32": .*{DTYPE_NAMES}'):
        gguf_dequant.torch.load_file(REAL, dtype=torch.int32)
    # only ASCII case is folded (a dotless i is no i)
    with pytest.raises(ValueError, match=DTYPE_NAMES):
        gguf_dequant.numpy.load_file(REAL, dtype="F\u0131oat32")
    for bad in ("float32 ", "float32\x00", "fp16", "bfloat", ""):
        with pytest.raises(ValueError, match=DTYPE_NAMES):
            gguf_dequant.numpy.load_file(REAL, dtype=bad, tensors=[])


def test_every_dtype_name_in_any_case():
    from gguf_dequant import _native

    t = REAL_TENSORS[0]
    for name, canonical in _native.dtype_names():
        for spelling in (name, name.upper(), name.capitalize()):
            assert _native.parse_dtype(spelling) == canonical
            a = gguf_dequant.numpy.load_file(REAL, dtype=spelling, tensors=[t.name])[t.name]
            assert a.dtype.name == canonical  # bfloat16: ml_dtypes
            raw = _native.dequantize(np.zeros(34, np.uint8), "q8_0", [32], spelling)
            assert raw.dtype == (np.float32 if canonical == "float32" else np.uint16)


def test_bad_device():
    if not torch.cuda.is_available():
        # a machine without a GPU (CI): a clear error, not a crash
        with pytest.raises(RuntimeError, match="no CUDA device"):
            gguf_dequant.torch.load_file(REAL, device="cuda")
        with pytest.raises(RuntimeError, match="no CUDA device"):
            gguf_dequant.torch.load_file(REAL, device=torch.device("cuda", 1))
    with pytest.raises(ValueError, match="'cpu', 'cuda' or 'cuda:N'"):
        gguf_dequant.torch.load_file(REAL, device="meta")


def test_bad_shards():
    name = Q4K.name  # 64 rows of 1536 columns, blocks of 256
    load = gguf_dequant.numpy.load_file
    with pytest.raises(GGUFError, match=r"block boundaries \(multiples of 256\)"):
        load(REAL, tensors=[name], shard={name: Shard(cols=(0, 100))})
    with pytest.raises(GGUFError, match="rows outside 0..64"):
        load(REAL, tensors=[name], shard={name: Shard(rows=(0, 65))})
    with pytest.raises(GGUFError, match="columns outside 0..1536"):
        load(REAL, tensors=[name], shard={name: (None, (256, 2048))})
    with pytest.raises(GGUFError, match="rows outside"):
        load(REAL, tensors=[name], shard={name: Shard(rows=(10, 5))})
    with pytest.raises(ValueError, match="negative"):
        load(REAL, tensors=[name], shard={name: Shard(rows=(-1, 5))})
    with pytest.raises(ValueError, match="step"):
        load(REAL, tensors=[name], shard={name: Shard(rows=slice(0, 10, 2))})
    with pytest.raises(TypeError, match="rows must be"):
        load(REAL, tensors=[name], shard={name: Shard(rows=3)})
    with pytest.raises(TypeError, match="Shard or a"):
        load(REAL, tensors=[name], shard=lambda n, s: "all")
    with pytest.raises(TypeError, match="shard must be"):
        load(REAL, tensors=[name], shard=42)
    # a shard error is raised before anything is decoded, and names the tensor
    with pytest.raises(GGUFError, match=f"tensor '{name}'"):
        load(REAL, shard={name: Shard(cols=(128, 256))})
    with pytest.raises(ValueError, match="rank 2 of world 2"):
        gguf_dequant.tp_shard(2, 2)
    with pytest.raises(ValueError, match="split"):
        gguf_dequant.tp_shard(0, 2, split="diagonal")
    # 64 rows cannot be split in 65 non-empty parts
    with pytest.raises(GGUFError, match="part 0 of 65"):
        load(REAL, tensors=[name], shard=gguf_dequant.tp_shard(0, 65, split="rows"))


def test_dequantize_bad_inputs():
    blocks = np.frombuffer(Q4K.quant, np.uint8)
    with pytest.raises(GGUFError, match=r"length mismatch: 55295 bytes of q4_K.*needs 55296 bytes"):
        gguf_dequant.dequantize(blocks[:-1], "q4_K", Q4K.shape)
    with pytest.raises(GGUFError, match="length mismatch"):
        gguf_dequant.dequantize(blocks, "q4_K", (64, 1535))
    with pytest.raises(GGUFError, match="length mismatch"):
        gguf_dequant.dequantize(blocks, "q5_0", Q4K.shape)
    with pytest.raises(GGUFError, match="cannot be dequantized"):
        gguf_dequant.dequantize(blocks, "q8_K", (1, 256))
    with pytest.raises(ValueError, match="unknown ggml type"):
        gguf_dequant.dequantize(blocks, "q4_k_m", Q4K.shape)
    with pytest.raises(ValueError, match="unknown ggml type id 4"):
        gguf_dequant.dequantize(blocks, 4, Q4K.shape)
    with pytest.raises(ValueError, match="unknown ggml type id"):
        gguf_dequant.dequantize(blocks, -1, Q4K.shape)
    with pytest.raises(TypeError, match="uint8"):
        gguf_dequant.dequantize(blocks.view(np.int8), "q4_K", Q4K.shape)
    with pytest.raises(TypeError, match="uint8"):
        gguf_dequant.dequantize(torch.zeros(10, dtype=torch.float32), "q4_K", Q4K.shape)
    with pytest.raises(TypeError):
        gguf_dequant.dequantize([1, 2, 3], "q4_K", Q4K.shape)
    with pytest.raises(NotImplementedError, match="CPU and CUDA tensors only"):
        gguf_dequant.dequantize(torch.empty(55296, dtype=torch.uint8, device="meta"), "q4_K", Q4K.shape)
    with pytest.raises(ValueError, match="negative"):
        gguf_dequant.dequantize(blocks, "q4_K", (-64, -1536))
    with pytest.raises(ValueError, match="too large"):
        gguf_dequant.dequantize(blocks, "q4_K", (2**40, 2**40))
    with pytest.raises(ValueError, match="float32, float16 or bfloat16"):
        gguf_dequant.dequantize(blocks, "q4_K", Q4K.shape, "float64")


def test_dequantize_non_contiguous_blocks():
    doubled = np.repeat(np.frombuffer(Q4K.quant, np.uint8), 2)[::2]  # a strided view
    a = gguf_dequant.dequantize(doubled, "q4_K", Q4K.shape)
    assert a.view(np.uint32).tolist() == Q4K.expected_f32.view(np.uint32).tolist()


def test_undecodable_tensor_in_a_file(tmp_path):
    from gguf_writer import write_gguf

    path = tmp_path / "ints.gguf"
    write_gguf(path, [("ok", 0, [2], bytes(8)), ("ids", 26, [4], bytes(16))])  # i32
    with gguf_dequant.GGUFFile(path) as f:
        assert f.tensors["ids"].type == "i32"
        assert f.raw("ids").tobytes() == bytes(16)
        assert f.get_tensor("ok").tolist() == [0.0, 0.0]
    with pytest.raises(GGUFError, match="tensor 'ids': type i32 \\(id 26\\) cannot be dequantized"):
        gguf_dequant.numpy.load_file(path)


def test_every_bad_argument_is_refused_before_decoding():
    # Each is an exception naming the argument, never a panic, an overflow
    # or an "internal error", and raised before anything is decoded.
    q8 = np.zeros(34, np.uint8)  # one q8_0 block of 32 values
    deq = gguf_dequant.dequantize
    with pytest.raises(ValueError, match="34 dimensions: numpy arrays have at most 32"):
        deq(q8, "q8_0", (1,) * 33 + (32,))
    with pytest.raises(ValueError, match="too large"):
        deq(np.zeros(0, np.uint8), "q8_0", (0, 2**62, 2**62))  # no values, but no array either
    with pytest.raises(ValueError, match="too large"):
        deq(q8, "q8_0", (2**64,))
    assert deq(np.zeros(0, np.uint8), "q8_0", (0, 2**20, 32)).shape == (0, 2**20, 32)
    for shape in ("32", b"32", (32.0,), None, [[32]]):
        with pytest.raises(TypeError, match="shape"):
            deq(q8, "q8_0", shape)
    with pytest.raises(TypeError, match="ggml_type"):
        deq(q8, True, (32,))
    with pytest.raises(TypeError, match="ggml_type"):
        deq(q8, 8.0, (32,))
    with pytest.raises(ValueError, match="unknown ggml type"):
        deq(q8, "q8_0\udcff", (32,))
    with pytest.raises(ValueError, match="unknown ggml type id"):
        deq(q8, 2**70, (32,))
    with pytest.raises(ValueError, match="dtype"):
        deq(q8, "q8_0", (32,), "float32\x00")

    name = Q4K.name
    load = gguf_dequant.numpy.load_file
    with pytest.raises(TypeError, match="rows"):
        load(REAL, tensors=[name], shard={name: Shard(rows=(0.5, 3))})
    with pytest.raises(GGUFError, match="rows .* outside 0..64"):
        load(REAL, tensors=[name], shard={name: Shard(rows=(0, 2**70))})
    with pytest.raises(ValueError, match="world"):
        gguf_dequant.tp_shard(0, 2**70)
    with pytest.raises(ValueError, match="negative"):
        gguf_dequant.tp_shard(0, 2, "rows")("t", (-1, 32))  # an OverflowError before
    # empty, but past what numpy takes once the item size counts (SIGSEGV before)
    for shape, dtype in (((0, 2**61), "float32"), ((2**62, 0), "bfloat16")):
        with pytest.raises(ValueError, match="too large"):
            deq(np.zeros(0, np.uint8), "f32", shape, dtype)
    with gguf_dequant.GGUFFile(REAL) as f:
        with pytest.raises(GGUFError, match="no tensor named"):
            f.raw("nope\udcff")
        with pytest.raises(TypeError, match="mmap"):
            gguf_dequant.GGUFFile(REAL, mmap="no")


def test_empty_tensors_numpy_cannot_hold(tmp_path):
    # A file the reader accepts (no elements, ne = [0, 2**61]) whose tensor
    # numpy cannot make even empty, as f32: an error, where the process died
    # of SIGSEGV (found by fuzz/python). f16 fits: 2 bytes each.
    from gguf_writer import write_gguf

    path = tmp_path / "empty-huge.gguf"
    write_gguf(path, [("e", 0, (0, 2**61), b"")])
    with gguf_dequant.GGUFFile(path) as f:
        assert f.tensors["e"].shape == (2**61, 0)
        with pytest.raises(GGUFError, match="too large for a numpy array"):
            f.get_tensor("e")
        assert f.get_tensor("e", dtype="float16").shape == (2**61, 0)
    with pytest.raises(GGUFError, match="too large for a numpy array"):
        gguf_dequant.numpy.load_file(path)


def test_empty_row_range_of_a_vector(tmp_path):
    # A vector is one row: its empty row range has no elements, shape (0,),
    # on every path (it was (cols,): "internal error" from numpy's side).
    from gguf_writer import write_gguf

    path = tmp_path / "vector.gguf"
    write_gguf(path, [("v", 0, (64,), np.arange(64, dtype=np.float32).tobytes())])
    with gguf_dequant.GGUFFile(path) as f:
        assert f.get_tensor("v", shard=((0, 0), None)).shape == (0,)
        assert f._shape("v", (0, 0, 0, 64)) == (0,)
        assert f.get_tensor("v", shard=((0, 1), (16, 48))).tolist() == list(range(16, 48))
