"""gguf_dequant.transformers: transformers' GGUF loading with our reader and
decoder gives the same model as without, to the bit.

Tiny Llama and Gemma 3 models are written here (real ggml blocks of every
type gguf-py decodes, taken from the fixture) and loaded by
``from_pretrained(folder, gguf_file=...)`` with and without the patch."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local files only (read when transformers is imported)
transformers = pytest.importorskip("transformers")  # the one optional dependency here

import gguf  # noqa: E402  (transformers' GGUF loading needs gguf-py: pinned with it)
import torch  # noqa: E402
from conftest import REAL_TENSORS, write_gguf  # noqa: E402
from gguf_writer import ARRAY, BOOL, F32, I32, STRING, U32  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402
from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint  # noqa: E402

import gguf_dequant  # noqa: E402
import gguf_dequant.transformers as gt  # noqa: E402
from gguf_dequant import GGML_TYPES  # noqa: E402

BY_TYPE = {t.type: t for t in REAL_TENSORS}
# Every type that both gguf-py and we decode (gguf-py 0.19 has no q1_0
# decoder and no q2_0 at all), f32 left for the norms.
SHARED_TYPES = [t.type for t in REAL_TENSORS if t.type not in ("q1_0", "q2_0", "f32")]

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, LAYERS, VOCAB = 256, 4, 2, 64, 512, 2, 64


def _blocks(type_name: str, ne: list) -> bytes:
    """Real blocks of ``type_name`` (the fixture's, repeated) for a tensor of ``ne``."""
    src, ty = BY_TYPE[type_name], GGML_TYPES[type_name]
    nbytes = int(np.prod(ne)) // ty.block_size * ty.block_bytes
    return (src.quant * (nbytes // len(src.quant) + 1))[:nbytes]


def _tensors(layout: list) -> list:
    """(name, ne) -> (name, type id, ne, blocks), the matrices cycling through SHARED_TYPES."""
    out, k = [], 0
    for name, ne in layout:
        if len(ne) == 1:
            type_name = "f32"
        else:
            type_name, k = SHARED_TYPES[k % len(SHARED_TYPES)], k + 1
        out.append((name, BY_TYPE[type_name].type_id, ne, _blocks(type_name, ne)))
    return out


def _llama(path) -> None:
    layout = [("token_embd.weight", [HIDDEN, VOCAB])]
    for i in range(LAYERS):
        p = f"blk.{i}."
        layout += [
            (p + "attn_norm.weight", [HIDDEN]),
            (p + "attn_q.weight", [HIDDEN, HEADS * HEAD_DIM]),
            (p + "attn_k.weight", [HIDDEN, KV_HEADS * HEAD_DIM]),
            (p + "attn_v.weight", [HIDDEN, KV_HEADS * HEAD_DIM]),
            (p + "attn_output.weight", [HEADS * HEAD_DIM, HIDDEN]),
            (p + "ffn_norm.weight", [HIDDEN]),
            (p + "ffn_gate.weight", [HIDDEN, FFN]),
            (p + "ffn_up.weight", [HIDDEN, FFN]),
            (p + "ffn_down.weight", [FFN, HIDDEN]),
        ]
    layout += [("output_norm.weight", [HIDDEN]), ("output.weight", [HIDDEN, VOCAB])]
    a = "llama."
    metadata = [
        ("general.architecture", STRING, "llama"),
        ("general.name", STRING, "tiny llama"),
        (a + "context_length", U32, 128),
        (a + "embedding_length", U32, HIDDEN),
        (a + "block_count", U32, LAYERS),
        (a + "feed_forward_length", U32, FFN),
        (a + "rope.dimension_count", U32, HEAD_DIM),
        (a + "rope.freq_base", F32, 10000.0),
        (a + "attention.head_count", U32, HEADS),
        (a + "attention.head_count_kv", U32, KV_HEADS),
        (a + "attention.layer_norm_rms_epsilon", F32, 1e-5),
        (a + "vocab_size", U32, VOCAB),
    ]
    write_gguf(path, _tensors(layout), metadata)


def _gemma3(path) -> None:
    layout = [("token_embd.weight", [HIDDEN, VOCAB])]
    for i in range(LAYERS):
        p = f"blk.{i}."
        layout += [
            (p + "attn_k.weight", [HIDDEN, KV_HEADS * HEAD_DIM]),
            (p + "attn_k_norm.weight", [HEAD_DIM]),
            (p + "attn_norm.weight", [HIDDEN]),
            (p + "attn_output.weight", [HEADS * HEAD_DIM, HIDDEN]),
            (p + "attn_q.weight", [HIDDEN, HEADS * HEAD_DIM]),
            (p + "attn_q_norm.weight", [HEAD_DIM]),
            (p + "attn_v.weight", [HIDDEN, KV_HEADS * HEAD_DIM]),
            (p + "ffn_down.weight", [FFN, HIDDEN]),
            (p + "ffn_gate.weight", [HIDDEN, FFN]),
            (p + "ffn_norm.weight", [HIDDEN]),
            (p + "ffn_up.weight", [HIDDEN, FFN]),
            (p + "post_attention_norm.weight", [HIDDEN]),
            (p + "post_ffw_norm.weight", [HIDDEN]),
        ]
    layout += [("output_norm.weight", [HIDDEN])]  # the output head is the embedding (tied)
    a = "gemma3."
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"\u2581tok{i}" for i in range(VOCAB - 4)]
    metadata = [
        ("general.architecture", STRING, "gemma3"),
        ("general.name", STRING, "tiny gemma 3"),
        ("general.tags", ARRAY, (STRING, ["tiny", "test"])),
        (a + "context_length", U32, 128),
        (a + "embedding_length", U32, HIDDEN),
        (a + "block_count", U32, LAYERS),
        (a + "feed_forward_length", U32, FFN),
        (a + "attention.head_count", U32, HEADS),
        (a + "attention.layer_norm_rms_epsilon", F32, 1e-6),
        (a + "attention.key_length", U32, HEAD_DIM),
        (a + "attention.value_length", U32, HEAD_DIM),
        (a + "rope.freq_base", F32, 1e6),
        (a + "attention.sliding_window", U32, 32),
        (a + "attention.head_count_kv", U32, KV_HEADS),
        ("tokenizer.ggml.model", STRING, "llama"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        ("tokenizer.ggml.scores", ARRAY, (F32, [-1000.0] * 4 + [-float(i) for i in range(VOCAB - 4)])),
        ("tokenizer.ggml.token_type", ARRAY, (I32, [3] * 4 + [1] * (VOCAB - 4))),
        ("tokenizer.ggml.bos_token_id", U32, 2),
        ("tokenizer.ggml.eos_token_id", U32, 1),
        ("tokenizer.ggml.add_bos_token", BOOL, True),
        ("tokenizer.ggml.merges", ARRAY, (STRING, [])),  # an empty array: gguf-py gives it no item type
    ]
    write_gguf(path, _tensors(layout), metadata)


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def tiny(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / f"tiny-{request.param}.gguf"
    {"llama": _llama, "gemma3": _gemma3}[request.param](path)
    return path


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().contiguous().view(torch.uint8)


def test_reader_lays_out_the_file_as_gguf_py(tiny):
    _assert_reads_as_gguf_py(tiny)


def _assert_reads_as_gguf_py(path) -> None:
    """Our reader and gguf-py's give the same fields and tensors: names,
    offsets, types, and every part's dtype, shape and bytes."""
    theirs = gguf.GGUFReader(path)
    ours = gt.GGUFReader(path)
    assert isinstance(ours, gt.GGUFReader)  # not gguf-py's, which it returns for what it cannot mirror
    assert list(ours.fields) == list(theirs.fields)
    for key, a in theirs.fields.items():
        b = ours.fields[key]
        assert (b.name, b.offset, b.data, list(b.types)) == (a.name, a.offset, a.data, list(a.types)), key
        assert [type(t) for t in b.types] == [type(t) for t in a.types], key
        assert len(b.parts) == len(a.parts), key
        for x, y in zip(a.parts, b.parts):
            assert (y.dtype, y.shape, y.tobytes()) == (x.dtype, x.shape, x.tobytes()), key
    assert (ours.alignment, ours.data_offset) == (theirs.alignment, theirs.data_offset)
    assert len(ours.tensors) == len(theirs.tensors)
    for a, b in zip(theirs.tensors, ours.tensors):
        assert (b.name, b.tensor_type, b.n_elements, b.n_bytes, b.data_offset) == (
            a.name, a.tensor_type, a.n_elements, a.n_bytes, a.data_offset)
        assert b.shape.dtype == a.shape.dtype and np.array_equal(b.shape, a.shape)
        assert (b.data.dtype, b.data.shape) == (a.data.dtype, a.data.shape), a.name
        assert np.array_equal(b.data.view(np.uint8), a.data.view(np.uint8)), a.name
        assert (b.field.offset, b.field.data) == (a.field.offset, a.field.data)
        for x, y in zip(a.field.parts, b.field.parts):
            assert (y.dtype, y.shape, y.tobytes()) == (x.dtype, x.shape, x.tobytes()), a.name


def test_load_gguf_checkpoint_parses_the_same(tiny):
    theirs = load_gguf_checkpoint(str(tiny), return_tensors=False)
    with gt.patch():
        ours = load_gguf_checkpoint(str(tiny), return_tensors=False)
    assert ours == theirs


def test_from_pretrained_gives_the_same_model_to_the_bit(tiny, monkeypatch):
    folder, name = tiny.parent, tiny.name
    ids = torch.tensor([[2, 7, 19, 33, 5, 60, 11]])

    theirs = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)

    # Count what went through us, to be sure the patch was used.
    calls = {"dequantize": 0, "reader": 0}
    real_dequantize, real_build = gt._dequantize, gt.GGUFReader._build

    def counting_dequantize(*args, **kwargs):
        calls["dequantize"] += 1
        return real_dequantize(*args, **kwargs)

    def counting_build(self, *args):
        calls["reader"] += 1
        return real_build(self, *args)

    monkeypatch.setattr(gt, "_dequantize", counting_dequantize)
    monkeypatch.setattr(gt.GGUFReader, "_build", counting_build)
    with gt.patch():
        ours, info = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32, output_loading_info=True
        )
    assert not any(info.values()), info  # every parameter came from the file
    n_blocks = sum(1 for t in gguf.GGUFReader(tiny).tensors if t.tensor_type.name != "F32")
    assert calls["dequantize"] == n_blocks
    assert calls["reader"] >= 2  # the config's parse and the weights'

    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert torch.equal(_bits(a[k]), _bits(b[k])), k
    with torch.no_grad():
        la, lb = theirs(ids).logits, ours(ids).logits
    assert torch.isfinite(la).all()
    assert torch.equal(_bits(la), _bits(lb))


def test_bfloat16_models_are_the_same(tmp_path):
    path = tmp_path / "tiny-llama.gguf"
    _llama(path)
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.bfloat16)
    with gt.patch():
        ours = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.bfloat16)
    for (k, x), y in zip(theirs.state_dict().items(), ours.state_dict().values()):
        assert x.dtype == y.dtype == torch.bfloat16 and torch.equal(_bits(x), _bits(y)), k


def test_dequantize_is_gguf_py_s_to_the_bit():
    for t in REAL_TENSORS:
        if t.type == "q2_0":
            continue  # gguf-py 0.19 does not know the type
        qtype = gguf.GGMLQuantizationType(t.type_id)
        raw = np.frombuffer(t.quant, dtype=np.uint8)
        if t.type in ("f32", "f16"):
            data = raw.view(np.float32 if t.type == "f32" else np.float16).reshape(t.shape)
        else:
            data = raw.reshape(gguf.quant_shape_to_byte_shape(t.shape, qtype))
        ours = gt.dequantize(data, qtype)
        assert ours.dtype == np.float32 and ours.shape == t.shape, t.type
        assert np.array_equal(ours.view(np.uint32), t.expected_f32.view(np.uint32)), t.type
        if t.type == "q1_0":  # ours only: gguf-py has no decoder for it
            with pytest.raises(NotImplementedError):
                gguf.quants.dequantize(data, qtype)
        else:
            theirs = gguf.quants.dequantize(data, qtype)
            assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32)), t.type


def test_patch_is_undone_also_on_errors():
    before = (gguf.GGUFReader, gguf.dequantize, gguf.quants.dequantize)
    with pytest.raises(RuntimeError, match="inside"):
        with gt.patch():
            assert gguf.GGUFReader is gt.GGUFReader
            assert gguf.dequantize is gt.dequantize and gguf.quants.dequantize is gt.dequantize
            with gt.patch(reader=False):
                assert gguf.GGUFReader is gt.GGUFReader
            assert gguf.dequantize is gt.dequantize
            raise RuntimeError("inside")
    assert (gguf.GGUFReader, gguf.dequantize, gguf.quants.dequantize) == before
    with gt.patch(dequantize=False):
        assert gguf.dequantize is before[1] and gguf.GGUFReader is gt.GGUFReader
    assert (gguf.GGUFReader, gguf.dequantize, gguf.quants.dequantize) == before


def test_what_we_do_not_mirror_goes_to_gguf_py(tmp_path, llama_file):
    # A reader opened for writing, and a file of a type gguf-py's enum lacks.
    assert isinstance(gt.GGUFReader(llama_file, "c"), gguf.GGUFReader)
    q2_0 = BY_TYPE["q2_0"]
    odd = tmp_path / "q2_0.gguf"
    write_gguf(odd, [("x", q2_0.type_id, [256, 2], _blocks("q2_0", [256, 2]))],
               metadata=[("general.architecture", STRING, "llama")])
    with pytest.raises(ValueError, match="42"):
        gt.GGUFReader(odd)  # gguf-py's own error, as without the patch


@pytest.mark.parametrize("shifts", [False, True])
def test_strings_that_are_not_utf8_are_the_files_bytes(tmp_path, shifts):
    # gguf-py hands out a string value's bytes as they are; our reader reads
    # bytes that are not UTF-8 as U+FFFD, and must not hand that out instead.
    # "\xf0\x90\x80" (a cut 4-byte sequence) is one U+FFFD, 3 bytes: the same
    # length, so nothing after it moves; "\xff" is one byte read as three.
    odd = [b"\xff", b"a\xffb", b"\xc3"] if shifts else [b"\xf0\x90\x80", b"ab\xf0\x90\x80"]
    path = tmp_path / "strings.gguf"
    write_gguf(path, [("x", 0, [4], np.arange(4, dtype="<f4").tobytes())], metadata=[
        ("general.architecture", STRING, "llama"),
        ("odd.string", STRING, odd[0]),
        ("odd.genuine", STRING, "a real \ufffd"),
        ("odd.tokens", ARRAY, (STRING, ["ok", *odd, "\ufffd", b""])),
        ("odd.after", U32, 7),
    ])
    with gguf_dequant.GGUFFile(path) as f:
        assert "\ufffd" in f.metadata["odd.string"]  # what our own reader reads
    _assert_reads_as_gguf_py(path)


def _patched() -> tuple:
    return (gguf.GGUFReader is gt.GGUFReader, gguf.dequantize is gt.dequantize,
            gguf.quants.dequantize is gt.dequantize)


def test_patch_blocks_of_two_threads_ending_in_the_other_order():
    before = (gguf.GGUFReader, gguf.dequantize, gguf.quants.dequantize)
    a_in, b_in, a_leave, a_out, b_leave = (threading.Event() for _ in range(5))
    errors = []

    def a():
        try:
            with gt.patch():
                a_in.set()
                assert a_leave.wait(60)
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)
        a_out.set()

    def b():
        try:
            assert a_in.wait(60)
            with gt.patch():
                b_in.set()
                assert b_leave.wait(60)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    try:
        assert b_in.wait(60) and _patched() == (True, True, True)
        a_leave.set()  # the first block in ends first
        assert a_out.wait(60)
        assert _patched() == (True, True, True), "undone while another thread's block is open"
    finally:
        a_leave.set()
        b_leave.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert (gguf.GGUFReader, gguf.dequantize, gguf.quants.dequantize) == before, "left installed"


def test_patch_blocks_ending_out_of_order_in_one_thread():
    before = (gguf.GGUFReader, gguf.dequantize, gguf.quants.dequantize)
    outer, inner = gt.patch(dequantize=False), gt.patch(reader=False)
    outer.__enter__()
    inner.__enter__()
    assert _patched() == (True, True, True)
    outer.__exit__(None, None, None)  # not the last in: ends first
    assert _patched() == (False, True, True) and gguf.GGUFReader is before[0]
    inner.__exit__(None, None, None)
    assert (gguf.GGUFReader, gguf.dequantize, gguf.quants.dequantize) == before


class _InterruptedOnce:
    """A module stand-in whose attribute ``name`` cannot be set the first
    time: a Ctrl-C (KeyboardInterrupt) at that moment of the patch's install."""

    def __init__(self, module, name):
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_armed", True)

    def __getattr__(self, name):
        return getattr(self._module, name)

    def __setattr__(self, name, value):
        if name == self._name and self._armed:
            object.__setattr__(self, "_armed", False)
            raise KeyboardInterrupt
        setattr(self._module, name, value)


def test_patch_interrupted_while_installing_is_undone(monkeypatch):
    # Ctrl-C between two of the patch's replacements: nothing stays replaced,
    # and the next block patches (and unpatches) as if it had never happened.
    before = (gguf.GGUFReader, gguf.dequantize, gguf.quants.dequantize)
    monkeypatch.setattr(gguf, "quants", _InterruptedOnce(gguf.quants, "dequantize"))
    with pytest.raises(KeyboardInterrupt):
        with gt.patch():
            pass
    assert (gguf.GGUFReader, gguf.dequantize, gguf.quants.dequantize) == before, "left half-installed"
    with gt.patch():
        assert _patched() == (True, True, True)
    assert (gguf.GGUFReader, gguf.dequantize, gguf.quants.dequantize) == before
