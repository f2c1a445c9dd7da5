"""Load GGUF tensors as PyTorch tensors (the API of ``safetensors.torch``)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Union

import torch

from . import _native
from ._core import GGUFFile, PathLike, ShardArg, _as_torch, _dtype_name

__all__ = ["load_file"]


def _device(device: Union[str, int, torch.device]) -> torch.device:
    """The device to load onto: the CPU, or a CUDA device with its index."""
    d = torch.device(device)
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"load_file(device={str(d)!r}): torch sees no CUDA device here")
        return torch.device("cuda", torch.cuda.current_device() if d.index is None else d.index)
    if d.type != "cpu":
        raise ValueError(f"load_file(device={str(d)!r}): 'cpu', 'cuda' or 'cuda:N'")
    return d


_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _load_cuda(
    f: GGUFFile, device: torch.device, dtype: str, tensors: Optional[Sequence[str]], shard: ShardArg
) -> Dict[str, torch.Tensor]:
    """Decodes on the GPU into tensors torch allocates (its caching allocator,
    on its current stream of ``device``): only the compressed blocks cross the
    bus; the decodes run after the work already queued on that stream."""
    load = getattr(_native, "load_cuda", None)
    if load is None:
        raise NotImplementedError(
            f"load_file(device={str(device)!r}): this build of gguf-dequant has no GPU "
            "support (built without the `cuda` feature); load with device='cpu'"
        )
    items = f._items(tensors, shard)
    out = {
        n: torch.empty(f._shape(n, spec), dtype=_TORCH_DTYPES[dtype], device=device)
        for n, spec in items
    }
    stream = torch.cuda.current_stream(device).cuda_stream
    ptrs = [(t.data_ptr(), t.numel()) for t in out.values()]
    load(f._f, items, dtype, device.index, stream, ptrs)
    return out


def load_file(
    filename: PathLike,
    device: Union[str, int, torch.device] = "cpu",
    dtype: Any = torch.float32,
    tensors: Optional[Sequence[str]] = None,
    shard: ShardArg = None,
) -> Dict[str, torch.Tensor]:
    """Loads the tensors of a GGUF file, decoded, as torch tensors.

    Args:
        filename: the GGUF file.
        device: ``"cpu"`` (default), or ``"cuda"`` / ``"cuda:N"``: the
            compressed blocks go to that GPU through pinned staging buffers and
            are decoded there by the library's kernels, into tensors torch
            allocates (its caching allocator; torch owns them), after the work
            already queued on torch's current stream of the device; complete
            on return.
        dtype: ``torch.float32`` (default), ``torch.float16`` or
            ``torch.bfloat16`` (or their names). float32 values are
            bit-identical to ggml's own dequantization; float16 and bfloat16
            are those values rounded to nearest even.
        tensors: the names of the tensors to load (default: all), in the
            order the result takes. An unknown name raises ``GGUFError``.
        shard: which part of each tensor this process loads, for tensor
            parallelism: ``None`` (whole tensors), a dict
            ``name -> Shard`` (tensors not in it are whole), a callable
            ``(name, shape) -> Shard | None``, or
            :func:`gguf_dequant.tp_shard` ``(rank, world)``, which splits
            llama.cpp's projections Megatron-style. Only the shard's blocks
            are read and decoded; see :class:`gguf_dequant.Shard`.

    Returns:
        ``{name: tensor}`` in file order (or the order of ``tensors``), each
        of row-major shape (ggml's ``ne`` reversed), contiguous, on
        ``device``. On the CPU each tensor owns the buffer the library decoded
        into: it is handed to torch without a copy (``torch.from_numpy``, and
        a dtype view for float16/bfloat16); on a GPU it is decoded in place.

    Raises:
        OSError: the file cannot be opened or read.
        gguf_dequant.GGUFError: the file is not valid GGUF (with the byte
            offset), a tensor's type cannot be decoded, a tensor is unknown,
            a shard is invalid, the file shrank while being read.
        MemoryError: the CUDA device ran out of memory for the library's
            staging buffers (the outputs are torch's allocations: torch
            raises its ``torch.cuda.OutOfMemoryError`` for them).
        NotImplementedError: a CUDA device, with a build without GPU support.
        RuntimeError: a CUDA device where torch sees none.
        ValueError, TypeError: an invalid ``device``, ``dtype`` or ``shard``.

    Example::

        >>> import torch
        >>> from gguf_dequant.torch import load_file
        >>> w = load_file("model.gguf", dtype=torch.bfloat16)
        >>> w["token_embd.weight"].dtype
        torch.bfloat16
    """
    dev = _device(device)
    name = _dtype_name(dtype)
    with GGUFFile(filename) as f:
        if dev.type == "cuda":
            return _load_cuda(f, dev, name, tensors, shard)
        raw = f._load_raw(name, tensors, shard)
    return {k: _as_torch(v, name) for k, v in raw.items()}
