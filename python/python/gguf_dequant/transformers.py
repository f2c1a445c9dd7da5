"""Load GGUF models into Hugging Face transformers through gguf-dequant.

transformers loads a GGUF file (``from_pretrained(..., gguf_file=...)``) with
gguf-py: its ``GGUFReader`` parses the file, once for the config, once for
the tokenizer and once more for the weights, and its numpy
``gguf.dequantize`` decodes each tensor on one core. On a model with a large
vocabulary the parse is most of the time (gguf-py makes a numpy view for
every part of every token string); the decode most of the rest.

:func:`patch` swaps both, for the duration of a ``with`` block, for this
package's: the metadata parsed by the Rust reader (:class:`GGUFFile`) and
handed over in gguf-py's own structures, and the tensors decoded by the
library (float32 bit-identical to ggml's, on all cores). Everything else is
transformers' own code, unchanged: its config and tokenizer mapping, its
GGUF-to-transformers tensor names, its reverse permutations of Llama's
``attn_q``/``attn_k``, its dtype casts::

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import gguf_dequant.transformers

    with gguf_dequant.transformers.patch():
        tok = AutoTokenizer.from_pretrained(folder, gguf_file="model.gguf")
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file="model.gguf",
                                                     dtype=torch.bfloat16)

The weights are the same bits as without the patch (gguf-py's dequantize
and ggml agree on every type gguf-py decodes; the test suite checks the
state dicts and logits of tiny Llama and Gemma 3 models to the bit).

Where it applies: transformers' GGUF loader ``load_gguf_checkpoint`` (in
transformers 5.23: every GGUF architecture but ``qwen35``, ``qwen35moe`` and
``lfm2``, which transformers loads through its newer path, with torch ops
and its own reader; the patch leaves those as they are). It works on any
code that calls ``gguf.GGUFReader`` / ``gguf.dequantize`` at run time, as
transformers does. It needs ``gguf`` (gguf-py) installed, which
transformers' GGUF loading needs anyway.

What the patch does not change: files this package cannot parse (a
big-endian GGUF, an array of arrays in the metadata) and readers opened
for writing (``mode="r+"``/``"c"``) go to gguf-py's own reader; types this
library does not decode (integer types), and f32 tensors (gguf-py returns a
view of them, which no decoder beats), to gguf-py's own ``dequantize``.

The patch replaces module attributes of ``gguf``: it is process-wide while
any ``with patch()`` block runs, in any thread (other threads loading GGUF
files meanwhile get it too), and gguf-py's own attributes are put back when
the last open block ends, whatever the order the blocks end in, also on an
exception.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ._core import GGML_TYPES, GGUFError, GGUFFile, PathLike, TensorInfo, dequantize as _dequantize

__all__ = ["GGUFReader", "dequantize", "patch"]

_TYPES_BY_ID = {t.id: t for t in GGML_TYPES.values()}

# GGUF metadata value types (GGUFValueType in gguf-py) and the numpy dtypes
# gguf-py reads scalars as, keyed by the names GGUFFile.metadata_types uses.
_VALUE_TYPES: Dict[str, Tuple[int, Optional[type]]] = {
    "u8": (0, np.uint8),
    "i8": (1, np.int8),
    "u16": (2, np.uint16),
    "i16": (3, np.int16),
    "u32": (4, np.uint32),
    "i32": (5, np.int32),
    "f32": (6, np.float32),
    "bool": (7, np.bool_),
    "string": (8, None),
    "u64": (10, np.uint64),
    "i64": (11, np.int64),
    "f64": (12, np.float64),
}
_ARRAY = 9

# The tensor types gguf-py's reader hands out as values of their own dtype
# (every other type as uint8 rows of blocks).
_PLAIN_TYPES: Dict[str, type] = {
    "f32": np.float32,
    "f16": np.float16,
    "f64": np.float64,
    "i8": np.int8,
    "i16": np.int16,
    "i32": np.int32,
    "i64": np.int64,
}


# gguf-py's own reader and dequantize, which ours defer to for what they do
# not handle. Taken when gguf-py is first imported here, before any patch.
_genuine: Dict[str, Any] = {}


def _gguf() -> Any:
    """gguf-py, imported on first use (it is what is being patched)."""
    try:
        gguf = importlib.import_module("gguf")
    except ImportError as e:
        raise ImportError(
            "gguf_dequant.transformers patches gguf-py, which transformers' GGUF loading "
            "uses: pip install gguf"
        ) from e
    if not _genuine:
        _genuine["GGUFReader"] = gguf.gguf_reader.GGUFReader
        _genuine["dequantize"] = gguf.quants.dequantize
    return gguf


# ----------------------------------------------------------------- dequantize


def dequantize(data: Any, qtype: Any) -> Any:
    """A drop-in for gguf-py's ``gguf.quants.dequantize(data, qtype)``.

    ``data`` is what gguf-py's reader gives as ``ReaderTensor.data``:
    ``uint8`` rows of blocks, of shape ``(..., bytes_per_row)``, or 16-bit
    values (``float16``); the result is a new float32 array of the
    row-major shape gguf-py gives, decoded by this library on all cores,
    with the same bits. The rest goes to gguf-py's own function: f32 (which
    it returns as a view, without decoding), the types this library does
    not decode (the integer types), and anything but a numpy array (gguf-py's
    lazy tensors).
    """
    _gguf()
    original = _genuine["dequantize"]
    try:
        ty = _TYPES_BY_ID.get(int(qtype))
    except (TypeError, ValueError):
        ty = None
    if ty is None or not ty.decodable or ty.name == "f32" or not isinstance(data, np.ndarray):
        return original(data, qtype)
    if data.dtype == np.uint8 and data.ndim > 0 and data.shape[-1] % ty.block_bytes == 0:
        shape = (*data.shape[:-1], data.shape[-1] // ty.block_bytes * ty.block_size)
    elif ty.name in ("f16", "bf16") and data.dtype.itemsize == 2:
        shape = tuple(data.shape)  # one value per element, as gguf-py reads f16
    else:
        return original(data, qtype)
    blocks = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    return _dequantize(blocks, ty.id, shape, "float32")


# ----------------------------------------------------------------- the reader


class GGUFReader:
    """A stand-in for gguf-py's ``GGUFReader`` that parses with this package.

    The file is parsed by :class:`gguf_dequant.GGUFFile` (Rust) and laid out
    as gguf-py lays it: ``fields`` (an ordered dict of gguf-py's
    ``ReaderField``: the header's ``GGUF.version``, ``GGUF.tensor_count``,
    ``GGUF.kv_count``, then each key with the same ``parts``, ``data``,
    ``types`` and ``offset``) and ``tensors`` (gguf-py's ``ReaderTensor``:
    ``data`` a view of the file's bytes, typed and shaped as gguf-py types
    and shapes it), so that code written against gguf-py's reader reads the
    same values and bytes. ``data`` is a read-only view of the very bytes
    that were parsed (the file is opened once: a path renamed meanwhile
    cannot mix two files); string values are the file's own bytes, also
    where they are not UTF-8. Constructing it with ``mode`` other than
    ``"r"``, or on a file this package does not parse (big-endian, arrays
    of arrays), returns gguf-py's own reader.
    """

    byte_order = "I"
    alignment: int
    data_offset: int
    data: "np.ndarray[Any, np.dtype[np.uint8]]"
    fields: Dict[str, Any]
    tensors: List[Any]
    endianess: Any

    def __new__(cls, path: PathLike, mode: str = "r") -> Any:
        gguf = _gguf()
        original = _genuine["GGUFReader"]
        if mode != "r":
            return original(path, mode)
        try:
            with GGUFFile(path) as f:
                self = super().__new__(cls)
                self._build(gguf, f)
        except (GGUFError, _Unmirrored):
            return original(path, mode)
        return self

    def __init__(self, path: PathLike, mode: str = "r") -> None:
        pass  # built in __new__, which may return gguf-py's reader instead

    def get_field(self, key: str) -> Any:
        """The ``ReaderField`` of ``key``, or None (as gguf-py's)."""
        return self.fields.get(key)

    def get_tensor(self, idx: int) -> Any:
        """The ``idx``-th ``ReaderTensor`` (as gguf-py's)."""
        return self.tensors[idx]

    def _build(self, gguf: Any, f: GGUFFile) -> None:
        reader = gguf.gguf_reader
        Field, VT = reader.ReaderField, gguf.GGUFValueType
        metadata, types = f.metadata, f.metadata_types
        infos = list(f.tensors.values())

        self.alignment = f.alignment
        self.data_offset = f.data_offset
        self.endianess = gguf.GGUFEndian.LITTLE
        self.data = f._f.data()

        def one(value: Any, dtype: Any) -> np.ndarray:
            return np.array([value], dtype=dtype)

        fields: Dict[str, Any] = OrderedDict()
        fields["GGUF.version"] = Field(4, "GGUF.version", [one(f.version, np.uint32)], [0], [VT.UINT32])
        fields["GGUF.tensor_count"] = Field(8, "GGUF.tensor_count", [one(len(infos), np.uint64)], [0], [VT.UINT64])
        fields["GGUF.kv_count"] = Field(16, "GGUF.kv_count", [one(len(metadata), np.uint64)], [0], [VT.UINT64])
        offset = 24
        for key, value in metadata.items():
            # The key's length, its bytes and its value type, then the value's parts.
            kbytes = key.encode("utf-8")  # keys are valid UTF-8 (the reader checks)
            at = offset + 8 + len(kbytes) + 4
            parts, data, vtypes, size = _value_parts(types[key], value, self.data, at)
            head = [one(len(kbytes), np.uint64), np.frombuffer(kbytes, np.uint8), one(vtypes[0], np.uint32)]
            fields[key] = Field(offset, key, head + parts, [i + 3 for i in data], [VT(t) for t in vtypes])
            offset += 8 + len(kbytes) + 4 + size
        self.fields = fields

        tensors = []
        for info in infos:
            try:
                qtype = gguf.GGMLQuantizationType(info.type_id)
            except ValueError:
                raise _Unmirrored from None  # a type gguf-py does not know: its reader says so
            name_bytes = info.name.encode("utf-8")
            dims = np.array(info.ne, dtype=np.uint64)
            parts = [
                one(len(name_bytes), np.uint64),
                np.frombuffer(name_bytes, np.uint8),
                one(len(info.ne), np.uint32),
                dims,
                one(info.type_id, np.uint32),
                one(info.offset - f.data_offset, np.uint64),
            ]
            field = Field(offset, info.name, parts, [1, 3, 4, 5])
            offset += 8 + len(name_bytes) + 4 + 8 * len(info.ne) + 4 + 8
            tensors.append(
                reader.ReaderTensor(
                    name=info.name,
                    tensor_type=qtype,
                    shape=dims,
                    n_elements=info.n_elements,
                    n_bytes=info.nbytes,
                    data_offset=info.offset,
                    data=self._tensor_data(info),
                    field=field,
                )
            )
        if offset + (-offset % self.alignment) != self.data_offset:
            raise _Unmirrored  # the layout is not the one these offsets assume
        self.tensors = tensors

    def _tensor_data(self, info: TensorInfo) -> Any:
        """The tensor's bytes as gguf-py's reader shapes them: values of their
        own dtype for the plain types, ``uint8`` rows of blocks otherwise."""
        raw = self.data[info.offset : info.offset + info.nbytes]
        if info.type in _PLAIN_TYPES:
            return raw.view(_PLAIN_TYPES[info.type]).reshape(info.shape)
        ty, shape = info.ggml_type, info.shape
        return raw.reshape((*shape[:-1], shape[-1] // ty.block_size * ty.block_bytes))


class _Unmirrored(Exception):
    """The file holds something gguf-py lays out in a way not mirrored here."""


def _string_parts(s: str, data: np.ndarray, at: int) -> Tuple[np.ndarray, np.ndarray]:
    """The parts of the string value ``s`` at offset ``at`` of the file
    ``data``: its length and its bytes. Those are ``s`` encoded, unless the
    reader replaced bytes that are not UTF-8 (U+FFFD): then the file's own,
    which re-encoding would not give back."""
    if "\ufffd" in s:
        n = data[at : at + 8].view(np.uint64)
        return n, data[at + 8 : at + 8 + int(n[0])]
    b = s.encode("utf-8")
    return np.array([len(b)], np.uint64), np.frombuffer(b, np.uint8)


def _value_parts(
    type_name: str, value: Any, file: np.ndarray, at: int
) -> Tuple[List[np.ndarray], List[int], List[int], int]:
    """One metadata value, at offset ``at`` of the file's bytes ``file``, as
    gguf-py's reader splits it: its parts, the indices of the parts that
    hold data, its value types (the array's item type after ``ARRAY``) and
    its size in the file."""
    if type_name.startswith("array["):
        item = type_name[len("array[") : -1]
        if item not in _VALUE_TYPES:
            raise _Unmirrored  # arrays of arrays
        item_id, dtype = _VALUE_TYPES[item]
        n = len(value)
        parts: List[np.ndarray] = [np.array([item_id], np.uint32), np.array([n], np.uint64)]
        if dtype is None:
            # Interleaved as gguf-py has them: length, bytes, length, bytes, ...
            pairs: List[Any] = [None] * (2 * n)
            if "\ufffd" in "".join(value):
                # some bytes were not UTF-8: the strings' own from the file
                end = at + 12
                for i, s in enumerate(value):
                    pairs[2 * i], pairs[2 * i + 1] = _string_parts(s, file, end)
                    end += 8 + len(pairs[2 * i + 1])
                size = end - at - 12
            else:
                encoded = [s.encode("utf-8") for s in value]
                lengths = np.array([len(b) for b in encoded], dtype=np.uint64).reshape(-1, 1)
                pairs[0::2] = list(lengths)
                pairs[1::2] = [np.frombuffer(b, np.uint8) for b in encoded]
                size = int(lengths.sum()) + 8 * n
            parts += pairs
            data = list(range(3, 3 + 2 * n, 2))
        else:
            arr: np.ndarray = np.ascontiguousarray(value, dtype=dtype)
            parts += list(arr.reshape(-1, 1))  # one 1-element view per item, as gguf-py's
            data = list(range(2, 2 + n))
            size = arr.nbytes
        # gguf-py takes the item type from the first item: an empty array has none.
        return parts, data, [_ARRAY, item_id] if n else [_ARRAY], 12 + size
    if type_name not in _VALUE_TYPES:
        raise _Unmirrored
    type_id, dtype = _VALUE_TYPES[type_name]
    if dtype is None:
        length, b = _string_parts(value, file, at)
        return [length, b], [1], [type_id], 8 + len(b)
    v: np.ndarray = np.array([value], dtype=dtype)
    return [v], [0], [type_id], v.nbytes


# ----------------------------------------------------------------- the patch

_our_dequantize = dequantize

# What the open ``with patch()`` blocks of every thread replaced: for each
# (module, attribute), the tokens of the blocks that replace it and what was
# there before the first. The first block in puts ours in, the last one out
# puts the original back, whatever the order the blocks end in. Each step
# leaves this consistent with the modules, so that an exception at any
# point of an install (Ctrl-C) is undone by the uninstall of its block.
_patch_lock = threading.Lock()
_patched: Dict[Tuple[Any, str], Tuple[set, Any]] = {}


def _install(targets: List[Tuple[Any, str, Any]], token: object) -> None:
    with _patch_lock:
        for module, name, ours in targets:
            tokens, _ = _patched.setdefault((module, name), (set(), getattr(module, name)))
            tokens.add(token)
            setattr(module, name, ours)


def _uninstall(targets: List[Tuple[Any, str, Any]], token: object) -> None:
    """Undoes what ``_install(targets, token)`` did, all or part of it."""
    with _patch_lock:
        for module, name, _ in targets:
            entry = _patched.get((module, name))
            if entry is None:
                continue  # not reached by an interrupted install
            tokens, original = entry
            tokens.discard(token)
            if not tokens:
                setattr(module, name, original)
                del _patched[(module, name)]


@contextlib.contextmanager
def patch(reader: bool = True, dequantize: bool = True) -> Iterator[None]:
    """Makes gguf-py, and so transformers' GGUF loading, parse and decode
    with this package inside the ``with`` block.

    Args:
        reader: replace ``gguf.GGUFReader`` with :class:`GGUFReader` (the
            metadata parsed in Rust: most of transformers' loading time on
            models with large vocabularies).
        dequantize: replace ``gguf.dequantize`` and
            ``gguf.quants.dequantize`` with :func:`dequantize`.

    Example::

        with gguf_dequant.transformers.patch():
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file="model.gguf")

    The replacement is process-wide: it stays while any block that asked
    for it is open, in any thread, and gguf-py's own attributes are put
    back when the last of them ends (also when it raises), whatever the
    order blocks nest or end in. Usable as a decorator too.

    Raises:
        ImportError: gguf-py (``pip install gguf``) is not installed.
    """
    gguf = _gguf()
    targets: List[Tuple[Any, str, Any]] = []
    if reader:
        targets.append((gguf, "GGUFReader", GGUFReader))
    if dequantize:
        targets += [(gguf, "dequantize", _our_dequantize), (gguf.quants, "dequantize", _our_dequantize)]
    token = object()
    try:
        _install(targets, token)
        yield
    finally:
        _uninstall(targets, token)
