"""The file, shard and decode API shared by `gguf_dequant.numpy` and `gguf_dequant.torch`."""

from __future__ import annotations

import operator
import os
import sys
from types import MappingProxyType
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np

from . import _native
from ._native import GGUFError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "GGUFError",
    "GGUFFile",
    "GGMLType",
    "GGML_TYPES",
    "Shard",
    "ShardSpec",
    "TPShard",
    "TensorInfo",
    "dequantize",
    "tp_shard",
]

#: A path: ``str``, ``bytes`` or an ``os.PathLike`` of either. Paths are
#: bytes on Linux, and are kept exactly: a ``str`` is ``os.fsencode``'d (its
#: surrogate escapes back into the bytes they stand for), never a lossy copy.
PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

#: One bound of a shard: ``None`` (all of it), a ``slice`` with step 1
#: (Python's slicing rules: negative indices count from the end, bounds are
#: clamped), or an exact ``(start, stop)`` pair (checked: out of range is an
#: error).
Range = Union[None, slice, range, Tuple[Optional[int], Optional[int]]]

#: What a shard argument gives for one tensor: ``None`` (the whole tensor),
#: a :class:`Shard`, or a ``(rows, cols)`` pair of :data:`Range`.
ShardSpec = Union[None, "Shard", Tuple[Range, Range]]

#: The ``shard=`` argument of the loaders.
ShardArg = Union[
    None,
    Mapping[str, ShardSpec],
    Callable[[str, Tuple[int, ...]], ShardSpec],
    "TPShard",
]

# ----------------------------------------------------------------- records


def _record(cls: Any) -> Any:
    """``cls`` as a frozen record, as a frozen dataclass would be (an
    ``__init__`` of its annotated fields in order, with their class-level
    defaults; ``__repr__``, ``__eq__`` and ``__hash__`` over the fields;
    assignment refused), built without ``exec``.

    Why not ``dataclasses``: it builds its methods by ``exec`` of source
    text, and CPython 3.11 remembers a KeyboardInterrupt raised inside an
    ``exec`` of text as unhandled even when the caller handles it: a Ctrl-C
    that lands while ``import gguf_dequant`` runs one would make the
    interpreter kill itself with SIGINT at exit, after the program caught
    the KeyboardInterrupt and finished normally.
    """
    fields = tuple(cls.__dict__.get("__annotations__", {}))
    defaults = {f: cls.__dict__[f] for f in fields if f in cls.__dict__}
    name = cls.__name__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(fields):
            raise TypeError(f"{name}() takes {len(fields)} positional arguments but {len(args)} were given")
        values = dict(zip(fields, args))
        for k, v in kwargs.items():
            if k not in fields:
                raise TypeError(f"{name}() got an unexpected keyword argument {k!r}")
            if k in values:
                raise TypeError(f"{name}() got multiple values for argument {k!r}")
            values[k] = v
        for f in fields:
            if f not in values:
                if f not in defaults:
                    raise TypeError(f"{name}() missing required argument: {f!r}")
                values[f] = defaults[f]
            object.__setattr__(self, f, values[f])

    def _values(self: Any) -> Tuple[Any, ...]:
        return tuple(getattr(self, f) for f in fields)

    def __repr__(self: Any) -> str:
        return f"{name}(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in fields) + ")"

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return _values(self) == _values(other)

    def __hash__(self: Any) -> int:
        return hash(_values(self))

    def __setattr__(self: Any, key: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {key!r}: a {name} is frozen")

    def __delattr__(self: Any, key: str) -> None:
        raise AttributeError(f"cannot delete field {key!r}: a {name} is frozen")

    for method in (__init__, __repr__, __eq__, __hash__, __setattr__, __delattr__):
        method.__qualname__ = f"{name}.{method.__name__}"
        setattr(cls, method.__name__, method)
    cls.__match_args__ = fields
    return cls


# ----------------------------------------------------------------- types


@_record
class GGMLType:
    """A ggml storage type: its name, id and block geometry.

    ``block_size`` elements are stored in ``block_bytes`` bytes; a row's
    length (``ne0``, the last row-major dimension) is a multiple of
    ``block_size``. ``decodable`` is False for the types ggml itself cannot
    dequantize (q8_1, q8_K, the integer types, f64).
    """

    name: str
    id: int
    block_size: int
    block_bytes: int
    decodable: bool


#: Every ggml type by name (``"q4_K"``, ``"iq2_xxs"``, ``"bf16"``, ...).
GGML_TYPES: Dict[str, GGMLType] = {
    name: GGMLType(name, id_, size, nbytes, ok)
    for (name, id_, size, nbytes, ok) in _native.ggml_types()
}
_TYPES_BY_ID: Dict[int, GGMLType] = {t.id: t for t in GGML_TYPES.values()}

# ----------------------------------------------------------------- dtypes

#: Every dtype name the extension's parser takes, lowercase, and the dtype it
#: names: the crate's list (``OutType::NAMES``), read once, so that a name is
#: looked up in Python (which ``torch.compile`` traces through) and only one
#: that is not there goes to the parser itself, to be refused in its words.
_DTYPE_NAMES: Dict[str, str] = dict(_native.dtype_names())

_BF16_UNSET = object()
_bf16_dtype: Any = _BF16_UNSET


def _bfloat16_numpy_dtype() -> Optional[np.dtype]:
    """``ml_dtypes.bfloat16`` as a numpy dtype, or None without ml_dtypes."""
    global _bf16_dtype
    if _bf16_dtype is _BF16_UNSET:
        try:
            import ml_dtypes

            _bf16_dtype = np.dtype(ml_dtypes.bfloat16)
        except ImportError:
            _bf16_dtype = None
    return _bf16_dtype  # type: ignore[no-any-return]


def _dtype_name(dtype: Any) -> str:
    """``"float32"``, ``"float16"`` or ``"bfloat16"`` from a name, a numpy
    dtype (or scalar type, ``ml_dtypes.bfloat16`` included) or a torch dtype.

    Names, and the names of numpy and torch dtypes, are those of the
    extension's parser (the crate's one list of dtype names, in any ASCII
    case): any other raises its ``ValueError``, which names them."""
    if isinstance(dtype, str):
        key = dtype
    elif type(dtype).__module__.split(".")[0] == "torch":
        key = str(dtype).rsplit(".", 1)[-1]  # torch.bfloat16 -> "bfloat16"
    else:
        try:
            key = np.dtype(dtype).name
        except TypeError:
            raise TypeError(
                f"dtype {dtype!r}: expected 'float32', 'float16' or 'bfloat16' "
                "(a name, a numpy dtype or a torch dtype)"
            ) from None
    # any ASCII case, as the parser takes it
    name = _DTYPE_NAMES.get(key.lower()) if key.isascii() else None
    return name if name is not None else _native.parse_dtype(key)


def _as_numpy(raw: np.ndarray, dtype: str) -> np.ndarray:
    """A decoded array (float32, or uint16 bits) viewed as ``dtype`` (no copy)."""
    if dtype == "float32":
        return raw
    if dtype == "float16":
        return raw.view(np.float16)
    bf16 = _bfloat16_numpy_dtype()
    return raw if bf16 is None else raw.view(bf16)


def _as_torch(raw: np.ndarray, dtype: str) -> "torch.Tensor":
    """A decoded array as a CPU torch tensor sharing its memory (no copy)."""
    import torch

    if dtype == "float32":
        return torch.from_numpy(raw)
    # 16-bit values travel as int16 (which every torch takes from numpy) and
    # are viewed as their own dtype: a reinterpretation, not a conversion.
    t = torch.from_numpy(raw.view(np.int16))
    return t.view(torch.float16 if dtype == "float16" else torch.bfloat16)


def _is_torch_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


# ----------------------------------------------------------------- shards


@_record
class Shard:
    """A part of a tensor: rows ``rows`` and, of each row, columns ``cols``.

    Rows are those of the tensor's row-major view with its slow dimensions
    flattened: a tensor of row-major shape ``(a, b, c)`` has ``a * b`` rows of
    ``c`` columns (``c`` is ggml's ``ne0``). Each bound is ``None`` (all),
    an exact ``(start, stop)`` pair, or a ``slice`` with step 1 (Python's
    rules: negative indices, clamped bounds).

    Columns split rows at **block boundaries only**: ``start`` and ``stop``
    must be multiples of the type's block size (32 for q4_0, 256 for q4_K,
    ...), since a block decodes only whole. An unaligned split raises
    :class:`GGUFError` naming the block size; it is never silently widened.

    The decoded shard has the tensor's own shape when it is the whole
    tensor, ``(cols,)`` for a vector, and ``(rows, cols)`` otherwise, with
    the same bits as slicing the whole decoded tensor reshaped to
    ``(-1, ne0)``. Only the shard's blocks are read from the file.

    >>> Shard(rows=(0, 2048))                   # the first 2048 rows, every column
    >>> Shard(cols=(0, 1024))                   # every row, columns [0, 1024)
    >>> Shard(rows=slice(-8, None))             # the last 8 rows
    """

    rows: Range = None
    cols: Range = None


def _bounds(spec: Range, n: int, what: str, name: str) -> Tuple[int, int]:
    if spec is None:
        return (0, n)
    if isinstance(spec, slice):
        start, stop, step = spec.indices(n)
        if step != 1:
            raise ValueError(f"shard of tensor {name!r}: {what} {spec!r} has a step; shards are contiguous")
        return (start, max(start, stop))
    if isinstance(spec, range):
        if spec.step != 1:
            raise ValueError(f"shard of tensor {name!r}: {what} {spec!r} has a step; shards are contiguous")
        start, stop = spec.start, spec.stop
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        try:
            start = 0 if spec[0] is None else operator.index(spec[0])
            stop = n if spec[1] is None else operator.index(spec[1])
        except TypeError:
            raise TypeError(f"shard of tensor {name!r}: {what} {spec!r}: bounds must be ints or None") from None
    else:
        raise TypeError(
            f"shard of tensor {name!r}: {what} must be None, a slice or a (start, stop) pair, got {spec!r}"
        )
    if start < 0 or stop < 0:
        raise ValueError(
            f"shard of tensor {name!r}: {what} ({start}, {stop}) is negative "
            "(a slice takes Python's negative indices; a pair is exact)"
        )
    if max(start, stop) >= 2**64:  # the library checks the rest, in 64 bits
        raise GGUFError(f"tensor {name!r}: shard {what} ({start}, {stop}) outside 0..{n}")
    return (start, stop)


def _normalize(spec: Any, info: "TensorInfo") -> Optional[Tuple[int, int, int, int]]:
    """A shard spec as ``(r0, r1, c0, c1)``, or None for the whole tensor."""
    if spec is None:
        return None
    if isinstance(spec, Shard):
        rows, cols = spec.rows, spec.cols
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        rows, cols = spec
    else:
        raise TypeError(
            f"shard of tensor {info.name!r}: expected None, a Shard or a (rows, cols) pair, got {spec!r}"
        )
    r = _bounds(rows, info.rows, "rows", info.name)
    c = _bounds(cols, info.cols, "cols", info.name)
    return (r[0], r[1], c[0], c[1])


class TPShard:
    """The tensor-parallel rule of rank ``rank`` in a group of ``world`` ranks.

    Made by :func:`tp_shard`. Called as ``rule(name, shape)`` (or
    ``rule(name, shape, ggml_type)``) it gives the rank's :class:`Shard` of
    that tensor, or ``None`` where every rank takes the whole tensor. The
    loaders pass it the tensor's ggml type, which column splits need (they
    split at block boundaries).
    """

    def __init__(
        self,
        rank: int,
        world: int,
        split: Union[str, Callable[[str, Tuple[int, ...]], str]] = "megatron",
    ) -> None:
        self.rank = operator.index(rank)
        self.world = operator.index(world)
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise ValueError(f"tp_shard: rank {rank} of world {world}: need 0 <= rank < world")
        if self.world >= 2**64:
            raise ValueError(f"tp_shard: world {world} is too large")
        if isinstance(split, str):
            if split not in ("megatron", "rows", "cols", "replicate"):
                raise ValueError(
                    f"tp_shard: split {split!r}: expected 'megatron', 'rows', 'cols', "
                    "'replicate' or a callable (name, shape) -> one of those"
                )
        elif not callable(split):
            raise TypeError(f"tp_shard: split must be a str or a callable, got {split!r}")
        self.split = split

    def __call__(
        self, name: str, shape: Sequence[int], ggml_type: Union[str, int, None] = None
    ) -> Optional[Shard]:
        shape = tuple(_dims(shape))
        how = self.split if isinstance(self.split, str) else self.split(name, shape)
        r = _native.tp_shard(name, list(reversed(shape)), ggml_type, self.rank, self.world, how)
        return None if r is None else Shard(rows=(r[0], r[1]), cols=(r[2], r[3]))

    def __repr__(self) -> str:
        return f"tp_shard(rank={self.rank}, world={self.world}, split={self.split!r})"


def tp_shard(
    rank: int,
    world: int,
    split: Union[str, Callable[[str, Tuple[int, ...]], str]] = "megatron",
) -> TPShard:
    """The shard rule of one rank of a tensor-parallel group, for ``shard=``.

    ``split`` says how each tensor is spread over the ``world`` ranks:

    - ``"megatron"`` (default): Megatron-style tensor parallelism over
      llama.cpp's tensor names. The projections whose outputs a rank
      computes alone (``attn_q``, ``attn_k``, ``attn_v``, ``attn_qkv``,
      ``ffn_gate``, ``ffn_up``) split by rows, the ones that reduce over
      those outputs (``attn_output``, ``ffn_down``) by columns, everything
      else (norms, embeddings, the output head) is whole on every rank;
    - ``"rows"``, ``"cols"``, ``"replicate"``: every tensor that way;
    - a callable ``(name, shape) -> "rows" | "cols" | "replicate"``.

    Splits are as even as whole rows (or whole blocks, for columns) go: the
    first ranks get one more where they do not divide (6 blocks over 4 ranks:
    2, 2, 1, 1). A tensor with fewer rows (or blocks per row) than ranks is
    an error, so that no rank's part is empty. This is the Rust crate's
    ``Split::megatron`` and ``Split::shard``.

    >>> from gguf_dequant.torch import load_file
    >>> part = load_file("model.gguf", shard=tp_shard(rank, world))
    """
    return TPShard(rank, world, split)


def _shard_spec(shard: Any, info: "TensorInfo") -> Optional[Tuple[int, int, int, int]]:
    if shard is None:
        return None
    if isinstance(shard, Mapping):
        return _normalize(shard.get(info.name), info)
    if isinstance(shard, TPShard):
        return _normalize(shard(info.name, info.shape, info.type), info)
    if callable(shard):
        return _normalize(shard(info.name, info.shape), info)
    raise TypeError(
        f"shard must be None, a dict name -> shard, a callable (name, shape) -> shard "
        f"or tp_shard(...), got {shard!r}"
    )


# ----------------------------------------------------------------- the file


@_record
class TensorInfo:
    """One tensor as the GGUF file describes it.

    ``shape`` is row-major (numpy's and torch's order: ggml's ``ne``
    reversed); ``ne`` is ggml's order, fastest dimension first. ``offset``
    is the absolute byte offset of the tensor's blocks in the file, and
    ``nbytes`` their size.
    """

    name: str
    type: str
    type_id: int
    shape: Tuple[int, ...]
    ne: Tuple[int, ...]
    offset: int
    nbytes: int
    n_elements: int

    @property
    def ggml_type(self) -> GGMLType:
        """The ggml type's name, id and block geometry."""
        return _TYPES_BY_ID[self.type_id]

    @property
    def rows(self) -> int:
        """Rows of the row-major view (every dimension but the last, flattened)."""
        n = 1
        for d in self.ne[1:]:
            n *= d
        return n

    @property
    def cols(self) -> int:
        """Elements per row (the last row-major dimension, ggml's ``ne0``)."""
        return self.ne[0] if self.ne else 1


class GGUFFile:
    """An open GGUF file: its metadata, its tensors, their raw blocks, decoded
    tensors.

    The file is parsed and checked when opened (a malformed file raises
    :class:`GGUFError` naming the field and byte offset) and mapped into
    memory (``mmap=True``) or read whole (``mmap=False``). Use it as a
    context manager, or call :meth:`close`::

        with GGUFFile("model.gguf") as f:
            print(f.metadata["general.architecture"])
            for name, info in f.tensors.items():
                print(name, info.type, info.shape)
            w = f.get_tensor("blk.0.attn_q.weight", dtype="bfloat16")

    Decoded tensors are read from the file with ``pread``, not through the
    mapping: a file truncated by someone else meanwhile gives an error, never
    a crash. Only :meth:`raw` hands out views of the mapping itself.
    """

    def __init__(self, path: PathLike, *, mmap: bool = True) -> None:
        self._path: Union[str, bytes] = os.fspath(path)
        self._f = _native.GGUFFile(self._path, mmap)
        self._tensors: Optional[Dict[str, TensorInfo]] = None
        self._metadata: Optional[Dict[str, Any]] = None

    # -- facts

    @property
    def path(self) -> Union[str, bytes]:
        """The path the file was opened from, exactly: ``os.fspath`` of what
        was given (``str`` or ``bytes``), naming the same file even where it
        is not UTF-8 (a ``str`` holds such bytes as surrogate escapes)."""
        return self._path

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._f.closed

    @property
    def version(self) -> int:
        """The GGUF version (2 or 3)."""
        return self._f.version

    @property
    def alignment(self) -> int:
        """The alignment of tensor data (``general.alignment``, default 32)."""
        return self._f.alignment

    @property
    def data_offset(self) -> int:
        """The absolute offset of the tensor data section."""
        return self._f.data_offset

    @property
    def metadata(self) -> Dict[str, Any]:
        """The key-value pairs, in file order.

        Integers and floats become ``int`` and ``float``, booleans ``bool``,
        strings ``str``; arrays of numbers (or booleans) become 1-D numpy
        arrays of their own dtype (``uint32``, ``float32``, ...), arrays of
        strings lists of ``str``, arrays of arrays lists. Each key's GGUF
        type is in :attr:`metadata_types`. Bytes of a string value that are
        not UTF-8 read as U+FFFD.

        The caller owns what it gets: a new dict and new lists each time,
        and the numpy arrays are **read-only** views (no copy of a large
        vocabulary's scores; ``np.array(v)`` makes a writeable copy), so that
        nothing done to one result changes another.
        """
        self._check_open()
        if self._metadata is None:
            self._metadata = {k: _frozen(v) for k, v in self._f.metadata().items()}
        return {k: _owned(v) for k, v in self._metadata.items()}

    @property
    def metadata_types(self) -> Dict[str, str]:
        """Each key's GGUF value type: ``u8`` ... ``u64``, ``i8`` ... ``i64``,
        ``f32``, ``f64``, ``bool``, ``string``, or ``array[<item type>]``."""
        return self._f.metadata_types()

    @property
    def tensors(self) -> Mapping[str, TensorInfo]:
        """The tensors by name, in file order (a read-only mapping)."""
        return MappingProxyType(self._infos())

    def _infos(self) -> Dict[str, TensorInfo]:
        self._check_open()
        if self._tensors is None:
            self._tensors = {
                name: TensorInfo(
                    name=name,
                    type=type_name,
                    type_id=type_id,
                    shape=tuple(reversed(ne)),
                    ne=tuple(ne),
                    offset=offset,
                    nbytes=nbytes,
                    n_elements=n,
                )
                for (name, type_name, type_id, ne, offset, nbytes, n) in self._f.tensor_infos()
            }
        return self._tensors

    def keys(self) -> List[str]:
        """The tensor names, in file order."""
        return list(self._infos())

    def __contains__(self, name: object) -> bool:
        return name in self._infos()

    def __len__(self) -> int:
        return len(self._infos())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    # -- data

    def raw(self, name: str) -> np.ndarray:
        """Tensor ``name``'s blocks: a read-only 1-D ``uint8`` array viewing
        the file's mapping (no copy), ``info.nbytes`` long.

        The array keeps the mapping alive, even after :meth:`close`. Decode
        it with :func:`dequantize` (``dequantize(f.raw(n), info.type,
        info.shape)``). The file's length is checked first; but a file that
        another process truncates *while* such a view is in use makes the
        process crash on access (SIGBUS), as with any mapping: open files
        that others may change with ``mmap=False`` (read into memory).
        """
        if name not in self._infos():
            raise GGUFError(f"no tensor named {name!r} in the file")
        return self._f.raw(name)

    def get_tensor(self, name: str, dtype: Any = "float32", shard: ShardSpec = None) -> np.ndarray:
        """Tensor ``name`` (or the shard ``shard`` of it: a :class:`Shard` or
        a ``(rows, cols)`` pair) decoded into a numpy array of ``dtype``:
        see :func:`gguf_dequant.numpy.load_file` for the dtypes."""
        return self.load(dtype, [name], {name: shard})[name]

    def load(
        self,
        dtype: Any = "float32",
        tensors: Optional[Sequence[str]] = None,
        shard: ShardArg = None,
    ) -> Dict[str, np.ndarray]:
        """Every tensor (or those named in ``tensors``) decoded into numpy
        arrays: what :func:`gguf_dequant.numpy.load_file` returns."""
        name = _dtype_name(dtype)
        return {k: _as_numpy(v, name) for k, v in self._load_raw(name, tensors, shard).items()}

    def _load_raw(
        self, dtype: str, tensors: Optional[Sequence[str]], shard: ShardArg
    ) -> Dict[str, np.ndarray]:
        """Decoded arrays (float32, or uint16 bits for 16-bit dtypes)."""
        items = self._items(tensors, shard)
        arrays = self._f.load(items, dtype)
        return dict(zip((n for n, _ in items), arrays))

    def _items(
        self, tensors: Optional[Sequence[str]], shard: ShardArg
    ) -> List[Tuple[str, Optional[Tuple[int, int, int, int]]]]:
        """The tensors to load, each with its shard ``(r0, r1, c0, c1)`` or
        None for all of it; unknown names raise."""
        infos = self._infos()
        if isinstance(tensors, str):
            tensors = [tensors]
        names = list(infos) if tensors is None else list(tensors)
        for n in names:
            if n not in infos:
                raise GGUFError(f"no tensor named {n!r} in the file")
        if isinstance(shard, Mapping):
            unknown = [k for k in shard if k not in infos]
            if unknown:
                raise GGUFError(f"shard names tensors the file does not hold: {unknown!r}")
        return [(n, _shard_spec(shard, infos[n])) for n in names]

    def _shape(self, name: str, spec: Optional[Tuple[int, int, int, int]]) -> Tuple[int, ...]:
        """The row-major shape of tensor ``name``'s shard ``spec``: the
        tensor's own when whole, ``(cols,)`` for a vector (``(0,)`` for no rows), else ``(rows, cols)``
        (as the library shapes shards)."""
        info = self._infos()[name]
        if spec is None:
            return tuple(info.shape)
        r0, r1, c0, c1 = spec
        if (r0, r1, c0, c1) == (0, info.rows, 0, info.cols):
            return tuple(info.shape)
        # a vector has one row: its columns, or none of them (as the library's)
        return ((r1 - r0) * (c1 - c0),) if len(info.shape) <= 1 else (r1 - r0, c1 - c0)

    # -- lifetime

    def _check_open(self) -> None:
        if self._f.closed:
            raise ValueError(f"GGUF file {self.path} is closed")

    def close(self) -> None:
        """Closes the file (arrays from :meth:`raw` keep its mapping until they go)."""
        self._f.close()

    def __enter__(self) -> "GGUFFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<GGUFFile {self.path!r} (closed)>"
        return f"<GGUFFile {self.path!r}: GGUF v{self.version}, {len(self)} tensors>"


def _frozen(value: Any) -> Any:
    """A metadata value as cached: its numpy arrays read-only for good, views
    of immutable ``bytes`` (an array that owns its memory could be made
    writeable again, through the ``.base`` of every view handed out)."""
    if isinstance(value, np.ndarray):
        return np.frombuffer(value.tobytes(), dtype=value.dtype)
    if isinstance(value, list):
        return [_frozen(v) for v in value]
    return value


def _owned(value: Any) -> Any:
    """A cached metadata value as handed out: new lists, read-only views of
    the arrays (a view of a read-only array cannot be made writeable)."""
    if isinstance(value, np.ndarray):
        return value.view()
    if isinstance(value, list):
        # GGUF arrays hold one type: strings (immutable, shared) or arrays
        if value and isinstance(value[0], (list, np.ndarray)):
            return [_owned(v) for v in value]
        return list(value)
    return value


# ----------------------------------------------------------------- dequantize


def dequantize(
    blocks: Union[np.ndarray, "torch.Tensor", bytes, bytearray, memoryview],
    ggml_type: Union[str, int],
    shape: Union[int, Sequence[int], None] = None,
    dtype: Any = None,
    *,
    out: Any = None,
) -> Any:
    """Decodes raw ggml blocks into values of row-major shape ``shape``.

    ``blocks`` is a ``uint8`` numpy array (any shape, e.g. from
    :meth:`GGUFFile.raw` or gguf-py's ``ReaderTensor.data``), a ``uint8``
    torch tensor (CPU or CUDA), or a bytes-like object; it must hold exactly
    the blocks of ``prod(shape)`` elements. ``ggml_type`` is a type name
    (``"q4_K"``, case-insensitive) or id (``12``; gguf-py's
    ``GGMLQuantizationType`` works). ``dtype`` is ``"float32"`` (the
    default), ``"float16"`` or ``"bfloat16"`` (or the numpy/torch dtype).

    ``out``: an existing array to decode into instead of a new one (nothing
    is allocated): a writeable C-contiguous numpy array (float32, float16,
    ``ml_dtypes.bfloat16``, or uint16 holding bfloat16 bits) for numpy or
    bytes blocks, a contiguous torch tensor on the blocks' device for torch
    blocks; of shape ``shape`` when given (``shape`` may be left out), of
    ``dtype`` when given. It is checked before anything is written: a wrong
    size, dtype, device or layout raises and leaves it as it was. Returns
    ``out``.

    Returns a numpy array, or a torch tensor on the device of ``blocks``
    when it is one (through the operator ``torch.ops.gguf_dequant.dequantize``,
    see :mod:`gguf_dequant.ops`: on a CUDA device the library's kernels decode
    it there, in the order of torch's current stream of that device,
    asynchronously, as torch's own operations). The values are ggml's
    own ``dequantize_row_*`` output to the bit in float32, rounded to
    nearest even in float16 and bfloat16. The decode runs on all cores with
    the GIL released; do not write to ``blocks`` or ``out`` from another
    thread meanwhile.

    Raises :class:`GGUFError` when the length does not match the shape and
    type, or the type cannot be decoded (q8_1, q8_K, integer types).
    """
    if shape is None and out is None:
        raise TypeError("dequantize() needs the shape (or an out= array, whose shape it takes)")
    if _is_torch_tensor(blocks):
        return _dequantize_torch(blocks, ggml_type, shape, dtype, out)
    if out is not None and _is_torch_tensor(out):
        raise TypeError("out= is a torch tensor: the blocks must be a torch tensor too (torch.from_numpy)")
    if isinstance(blocks, np.ndarray):
        if blocks.dtype != np.uint8:
            raise TypeError(f"blocks must be a uint8 array, got {blocks.dtype}")
        arr = blocks
    elif isinstance(blocks, (bytes, bytearray, memoryview)):
        arr = np.frombuffer(blocks, dtype=np.uint8)
    else:
        raise TypeError(
            f"blocks must be a uint8 numpy array, a uint8 torch tensor or bytes, got {type(blocks).__name__}"
        )
    arr = np.ascontiguousarray(arr).reshape(-1)
    if out is None:
        name = _dtype_name("float32" if dtype is None else dtype)
        raw = _native.dequantize(arr, ggml_type, _dims(shape), name)  # type: ignore[arg-type]
        return _as_numpy(raw, name)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    name = _out_dtype_name(out.dtype)
    if dtype is not None and _dtype_name(dtype) != name:
        raise ValueError(f"dtype {dtype!r} and out's dtype {out.dtype} differ")
    if shape is not None and tuple(_dims(shape)) != out.shape:
        raise ValueError(f"out has shape {out.shape}, not the shape {tuple(_dims(shape))} asked for")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("out must be a writeable, C-contiguous array")
    flat = out.reshape(-1)
    _native.dequantize_into(arr, ggml_type, flat if name == "float32" else flat.view(np.uint16), name)
    return out


def _out_dtype_name(dt: np.dtype) -> str:
    """The dtype name of a numpy out= array (uint16 holds bfloat16 bits)."""
    if dt == np.float32:
        return "float32"
    if dt == np.float16:
        return "float16"
    bf16 = _bfloat16_numpy_dtype()
    if dt == np.uint16 or (bf16 is not None and dt == bf16):
        return "bfloat16"
    raise ValueError(f"out has dtype {dt}: gguf-dequant decodes into float32, float16 or bfloat16 only")


def _dequantize_torch(blocks: Any, ggml_type: Any, shape: Any, dtype: Any, out: Any) -> Any:
    """``dequantize`` of a torch tensor, by the operators of :mod:`gguf_dequant.ops`."""
    import torch

    from . import ops

    if blocks.device.type not in ("cpu", "cuda"):
        raise NotImplementedError(f"dequantize on a {blocks.device} tensor: CPU and CUDA tensors only")
    if blocks.dtype != torch.uint8:
        raise TypeError(f"blocks must be a uint8 tensor, got {blocks.dtype}")
    ty = ops.type_id(ggml_type)
    if out is None:
        tdtype = _TORCH_DTYPES[_dtype_name("float32" if dtype is None else dtype)]
        return ops.dequantize_fast(blocks, ty, _dims(shape), tdtype)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch tensor (the blocks are one), got {type(out).__name__}")
    if dtype is not None and _TORCH_DTYPES[_dtype_name(dtype)] != out.dtype:
        raise ValueError(f"dtype {dtype!r} and out's dtype {out.dtype} differ")
    if shape is not None and tuple(_dims(shape)) != tuple(out.shape):
        raise ValueError(f"out has shape {tuple(out.shape)}, not the shape {tuple(_dims(shape))} asked for")
    ops.dequantize_into_fast(blocks, ty, out)
    return out


def _torch_dtypes() -> Dict[str, Any]:
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class _LazyTorchDtypes(dict):
    def __missing__(self, key: str) -> Any:
        self.update(_torch_dtypes())
        return dict.__getitem__(self, key)


_TORCH_DTYPES: Dict[str, Any] = _LazyTorchDtypes()


#: The most dimensions a numpy array has (numpy 1's, and what rust-numpy takes).
_MAX_DIMS = 32


def _dims(shape: Union[int, Sequence[int]]) -> List[int]:
    """``shape`` as a list of dimensions, checked before anything is decoded
    or allocated: ints, none negative, at most 32, of a size an array can
    have (the product of the dimensions other than 0 fits an ``intp``)."""
    try:
        if isinstance(shape, (str, bytes)):
            raise TypeError
        dims = [operator.index(shape)] if isinstance(shape, (int, np.integer)) else [operator.index(d) for d in shape]
    except TypeError:
        raise TypeError(f"shape {shape!r}: expected an int or a sequence of ints") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"shape {tuple(dims)} has a negative dimension")
    if len(dims) > _MAX_DIMS:
        raise ValueError(f"shape has {len(dims)} dimensions: numpy arrays have at most {_MAX_DIMS}")
    size = 1
    for d in dims:
        size *= d or 1
    if size > np.iinfo(np.intp).max:
        raise ValueError(f"shape {tuple(dims)} is too large")
    return dims
