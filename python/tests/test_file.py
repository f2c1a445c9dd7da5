"""GGUFFile: tensor infos, metadata, raw views of the mapping; and what shares
memory with what (no copies)."""

from __future__ import annotations

import gc
import inspect
import json

import numpy as np
import pytest
import torch

import gguf_dequant
import gguf_dequant.numpy
import gguf_dequant.torch
from conftest import FIXTURES, REAL, REAL_TENSORS
from gguf_writer import (
    ARRAY, BOOL, F32, F64, I8, I16, I32, I64, STRING, U8, U16, U32, U64, write_gguf,
)


def root_base(a: np.ndarray):
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a


def test_tensor_infos_match_the_manifest():
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    with gguf_dequant.GGUFFile(REAL) as f:
        assert f.version == 3 and f.alignment == 32
        infos = f.tensors
        assert list(infos) == [t["name"] for t in manifest["tensors"]] == f.keys()
        for t in manifest["tensors"]:
            info = infos[t["name"]]
            assert info.type == t["ggml_type"] and info.type_id == t["type_id"]
            assert info.ne == tuple(t["ne_ggml"]) and info.shape == tuple(reversed(t["ne_ggml"]))
            assert info.offset == t["data_offset_in_file"]
            assert info.nbytes == t["quant_bytes"] and info.n_elements == t["n_elements"]
            assert info.ggml_type.name == info.type and info.rows * info.cols == info.n_elements
        assert "minilm.q4_0" in f and "nope" not in f and len(f) == len(manifest["tensors"])


def test_metadata_values(tmp_path):
    path = tmp_path / "meta.gguf"
    md = [
        ("u8", U8, 200), ("i8", I8, -5), ("u16", U16, 60000), ("i16", I16, -30000),
        ("u32", U32, 4_000_000_000), ("i32", I32, -2_000_000_000), ("f32", F32, 0.25),
        ("bool", BOOL, True), ("str", STRING, "héllo \x1b[31m"), ("u64", U64, 2**64 - 1),
        ("i64", I64, -(2**63)), ("f64", F64, 1e-300),
        ("tokens", ARRAY, (STRING, ["<s>", "a", "ü"])),
        ("scores", ARRAY, (F32, [0.5, -1.0])),
        ("ids", ARRAY, (I32, [1, -2, 3])),
        ("flags", ARRAY, (BOOL, [True, False])),
        ("empty", ARRAY, (U64, [])),
        ("nested", ARRAY, (ARRAY, [(U8, [1, 2]), (STRING, ["x"])])),
    ]
    write_gguf(path, [("t", 0, [4], np.arange(4, dtype="<f4").tobytes())], md)
    with gguf_dequant.GGUFFile(path) as f:
        m = f.metadata
        assert list(m) == [k for k, _, _ in md]
        assert m["u8"] == 200 and m["i8"] == -5 and m["u16"] == 60000 and m["i16"] == -30000
        assert m["u32"] == 4_000_000_000 and m["i32"] == -2_000_000_000 and m["f32"] == 0.25
        assert m["bool"] is True and m["str"] == "héllo \x1b[31m"
        assert m["u64"] == 2**64 - 1 and m["i64"] == -(2**63) and m["f64"] == 1e-300
        assert m["tokens"] == ["<s>", "a", "ü"]
        assert m["scores"].dtype == np.float32 and m["scores"].tolist() == [0.5, -1.0]
        assert m["ids"].dtype == np.int32 and m["ids"].tolist() == [1, -2, 3]
        assert m["flags"].dtype == np.bool_ and m["flags"].tolist() == [True, False]
        assert m["empty"].dtype == np.uint64 and m["empty"].size == 0
        assert m["nested"][0].tolist() == [1, 2] and m["nested"][1] == ["x"]
        types = f.metadata_types
        assert types["u32"] == "u32" and types["tokens"] == "array[string]"
        assert types["nested"] == "array[array]" and types["scores"] == "array[f32]"
        assert f.get_tensor("t").tolist() == [0.0, 1.0, 2.0, 3.0]


def test_metadata_values_are_the_callers(tmp_path):
    # What one caller does to the values it got changes nothing another reads.
    path = tmp_path / "meta.gguf"
    md = [
        ("scores", ARRAY, (F32, [0.5, -1.0])),
        ("tokens", ARRAY, (STRING, ["a", "b"])),
        ("nested", ARRAY, (ARRAY, [(U8, [1, 2]), (STRING, ["x"])])),
    ]
    write_gguf(path, [("t", 0, [4], bytes(16))], md)
    with gguf_dequant.GGUFFile(path) as f:
        m = f.metadata
        with pytest.raises(ValueError, match="read-only"):
            m["scores"][0] = 9.0
        with pytest.raises(ValueError):
            m["scores"].flags.writeable = True  # a view of a read-only array stays so
        with pytest.raises(ValueError, match="read-only"):
            m["nested"][0] += 1
        m["tokens"].append("c")
        m["tokens"][0] = "z"
        m["nested"][1].append("y")
        m["nested"].append("more")
        mine = np.array(m["scores"])  # a writeable copy, when one is wanted
        mine[0] = 9.0
        # nor through the array a view is of: `.base` is no writeable alias
        for a in (m["scores"], m["nested"][0]):
            base = a
            while isinstance(base, np.ndarray):
                with pytest.raises(ValueError):
                    base.flags.writeable = True
                base = base.base
        again = f.metadata
        assert again["scores"].tolist() == [0.5, -1.0]
        assert again["tokens"] == ["a", "b"]
        assert again["nested"][0].tolist() == [1, 2] and again["nested"][1:] == [["x"]]


@pytest.mark.parametrize("mmap", [True, False])
def test_raw_is_a_read_only_view_of_the_file(mmap):
    f = gguf_dequant.GGUFFile(REAL, mmap=mmap)
    a, b = REAL_TENSORS[0], REAL_TENSORS[5]
    ra, rb = f.raw(a.name), f.raw(b.name)
    # views of one buffer holding the whole file: their addresses are the
    # file offsets apart, and their base is the file's bytes
    assert rb.ctypes.data - ra.ctypes.data == b.offset - a.offset
    assert type(ra.base).__name__ == "FileBytes" and not ra.flags.owndata
    assert ra.tobytes() == a.quant
    assert not ra.flags.writeable
    with pytest.raises(ValueError):
        ra.flags.writeable = True
    with pytest.raises(ValueError):
        ra[0] = 1
    # the view keeps the file's bytes alive after close and after the file object goes
    f.close()
    assert f.closed
    del f
    gc.collect()
    assert ra.tobytes() == a.quant and rb.tobytes() == b.quant


def test_loaded_arrays_own_the_decoded_buffer():
    got = gguf_dequant.numpy.load_file(REAL, dtype="float16")
    ptrs = set()
    for name, a in got.items():
        base = root_base(a)
        # the buffer Rust decoded into, handed to numpy (numpy did not allocate it)
        assert not isinstance(base, np.ndarray) and "SliceContainer" in type(base).__name__, name
        assert a.flags.writeable
        ptrs.add(a.ctypes.data)
    assert len(ptrs) == len(got)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_torch_tensors_share_memory_with_the_decoded_arrays(monkeypatch, dtype):
    pairs = []
    convert = gguf_dequant.torch._as_torch

    def spy(raw, name):
        t = convert(raw, name)
        pairs.append((raw, t))
        return t

    monkeypatch.setattr(gguf_dequant.torch, "_as_torch", spy)
    got = gguf_dequant.torch.load_file(REAL, dtype=dtype)
    assert len(pairs) == len(got)
    for (raw, t), x in zip(pairs, got.values()):
        assert x is t
        assert x.data_ptr() == raw.ctypes.data
        assert np.shares_memory(x.view(torch.int32 if dtype == "float32" else torch.int16).numpy(), raw)
        # a write through the tensor is seen in the array: one buffer
        ints = x.view(torch.int32 if dtype == "float32" else torch.int16).view(-1)
        ints[0] = 12345
        assert raw.reshape(-1).view(np.int32 if raw.dtype.itemsize == 4 else np.int16)[0] == 12345


def test_empty_tensors(tmp_path):
    """A zero in a tensor's shape: an empty array or tensor of that shape,
    between tensors that decode."""
    q8_0 = gguf_dequant.GGML_TYPES["q8_0"].id
    block = bytes([0, 0x3C]) + bytes(range(32))  # scale 1.0, quants 0..31
    path = tmp_path / "empty.gguf"
    write_gguf(path, [
        ("before", q8_0, [32, 2], block * 2),
        ("empty.rows", q8_0, [32, 0], b""),
        ("empty.cols", q8_0, [0, 5], b""),
        ("after", q8_0, [32], block),
    ])
    shapes = [(2, 32), (0, 32), (5, 0), (32,)]
    arrays = gguf_dequant.numpy.load_file(path)
    assert [a.shape for a in arrays.values()] == shapes
    assert arrays["after"].tolist() == list(range(32))
    tensors = gguf_dequant.torch.load_file(path, dtype=torch.bfloat16)
    assert [tuple(t.shape) for t in tensors.values()] == shapes
    assert tensors["before"].float().flatten().tolist() == list(range(32)) * 2
    with gguf_dequant.GGUFFile(path) as f:
        assert f.raw("empty.cols").size == 0
        out = gguf_dequant.dequantize(f.raw("empty.cols"), "q8_0", (5, 0))
        assert out.shape == (5, 0) and out.dtype == np.float32


def test_closed_file():
    f = gguf_dequant.GGUFFile(REAL)
    assert "GGUF v3, 28 tensors" in repr(f)
    f.close()
    assert "closed" in repr(f)
    for op in (lambda: f.tensors, lambda: f.metadata, lambda: f.raw("minilm.q4_0"),
               lambda: f.get_tensor("minilm.q4_0"), lambda: f.load()):
        with pytest.raises(ValueError, match="closed"):
            op()
    f.close()  # twice is fine


def test_context_manager_closes():
    with gguf_dequant.GGUFFile(REAL) as f:
        assert not f.closed
    assert f.closed


def test_public_api_is_documented():
    public = [
        gguf_dequant.GGUFFile, gguf_dequant.TensorInfo, gguf_dequant.Shard, gguf_dequant.TPShard,
        gguf_dequant.GGMLType, gguf_dequant.GGUFError, gguf_dequant.dequantize, gguf_dequant.tp_shard,
        gguf_dequant.numpy.load_file, gguf_dequant.torch.load_file, gguf_dequant,
        gguf_dequant.numpy, gguf_dequant.torch,
    ]
    for name, member in inspect.getmembers(gguf_dequant.GGUFFile):
        if not name.startswith("_"):
            public.append(member)
    for obj in public:
        doc = inspect.getdoc(obj)
        assert doc and len(doc) > 20, obj
    doc = inspect.getdoc(gguf_dequant.torch.load_file)
    for word in ("device", "dtype", "tensors", "shard", "Returns", "Raises", "bfloat16"):
        assert word in doc
    sig = inspect.signature(gguf_dequant.torch.load_file)
    assert list(sig.parameters) == ["filename", "device", "dtype", "tensors", "shard"]


def test_records_are_frozen_values():
    """TensorInfo, GGMLType and Shard: equal and hashed by their fields,
    frozen, printed with their fields, and surviving pickle and deepcopy
    (multiprocessing sends them) as equal values."""
    import copy
    import pickle

    with gguf_dequant.GGUFFile(REAL) as f:
        info = next(iter(f.tensors.values()))
    records = [info, info.ggml_type, gguf_dequant.Shard(rows=(1, 2)), gguf_dequant.Shard()]
    for r in records:
        assert pickle.loads(pickle.dumps(r)) == r
        assert copy.deepcopy(r) == r
        assert hash(copy.copy(r)) == hash(r)
        name = type(r).__name__
        assert repr(r).startswith(name + "(")
        field = type(r).__match_args__[0]
        with pytest.raises(AttributeError, match="frozen"):
            setattr(r, field, None)
        with pytest.raises(AttributeError, match="frozen"):
            delattr(r, field)
    assert gguf_dequant.Shard(rows=(0, 1)) != gguf_dequant.Shard(cols=(0, 1))
    assert gguf_dequant.Shard((0, 1)) == gguf_dequant.Shard(rows=(0, 1), cols=None)
    with pytest.raises(TypeError, match="unexpected keyword"):
        gguf_dequant.Shard(row=(0, 1))
    with pytest.raises(TypeError, match="multiple values"):
        gguf_dequant.Shard((0, 1), rows=(0, 1))
    with pytest.raises(TypeError, match="positional"):
        gguf_dequant.Shard(None, None, None)
    with pytest.raises(TypeError, match="missing"):
        type(info.ggml_type)("q4_0")
