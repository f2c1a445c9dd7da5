"""Load GGUF tensors as numpy arrays (the API of ``safetensors.numpy``)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

from ._core import GGUFFile, PathLike, ShardArg

__all__ = ["load_file"]


def load_file(
    filename: PathLike,
    dtype: Any = "float32",
    tensors: Optional[Sequence[str]] = None,
    shard: ShardArg = None,
) -> Dict[str, np.ndarray]:
    """Loads the tensors of a GGUF file, decoded, as numpy arrays.

    Args:
        filename: the GGUF file.
        dtype: ``"float32"`` (default), ``"float16"`` or ``"bfloat16"`` (or
            ``np.float32``, ``np.float16``, ``ml_dtypes.bfloat16``). float32
            values are bit-identical to ggml's own dequantization; float16
            and bfloat16 are those values rounded to nearest even.
            **bfloat16** arrays have dtype ``ml_dtypes.bfloat16`` when the
            ``ml_dtypes`` package is installed, and otherwise are ``uint16``
            arrays holding the bfloat16 bits (``arr.view(ml_dtypes.bfloat16)``
            or ``torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)``
            reads them).
        tensors: the names of the tensors to load (default: all), in the
            order the result takes. An unknown name raises ``GGUFError``.
        shard: which part of each tensor to load, for tensor parallelism:
            ``None`` (whole tensors), a dict ``name -> Shard`` (tensors not
            in it are whole), a callable ``(name, shape) -> Shard | None``,
            or :func:`gguf_dequant.tp_shard` ``(rank, world)``. A shard may
            also be a ``(rows, cols)`` pair. Only the shard's blocks are read
            and decoded; see :class:`gguf_dequant.Shard` for what rows,
            columns and the result's shape are.

    Returns:
        ``{name: array}`` in file order (or the order of ``tensors``), each
        array of row-major shape (ggml's ``ne`` reversed), C-contiguous and
        writeable, owning the buffer the library decoded into (no copy).

    Raises:
        OSError: the file cannot be opened or read (``FileNotFoundError``,
            ``IsADirectoryError``, ...).
        gguf_dequant.GGUFError: the file is not valid GGUF (with the byte
            offset), a tensor's type cannot be decoded (q8_1, q8_K, integer
            types), a tensor is unknown, a shard is invalid (e.g. columns
            not at block boundaries), the file shrank while being read.
        ValueError, TypeError: an invalid ``dtype`` or ``shard`` argument.

    Example::

        >>> from gguf_dequant.numpy import load_file
        >>> w = load_file("model.gguf", dtype="float16")
        >>> w["blk.0.attn_q.weight"].shape
        (896, 896)
    """
    with GGUFFile(filename) as f:
        return f.load(dtype, tensors, shard)
