"""Load GGUF tensors as PyTorch tensors (the API of ``safetensors.torch``)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Union

import torch

from ._core import GGUFFile, PathLike, ShardArg, _as_torch, _dtype_name

__all__ = ["load_file"]


def _check_device(device: Union[str, int, torch.device]) -> None:
    d = torch.device(device)
    if d.type == "cpu":
        return
    if d.type == "cuda":
        raise NotImplementedError(
            f"load_file(device={str(d)!r}): decoding on the GPU is not in this build of "
            "gguf-dequant (CPU only); load with device='cpu' and move the tensors with "
            ".to(device)"
        )
    raise ValueError(f"load_file(device={str(d)!r}): only 'cpu' is supported in this build")


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
        device: ``"cpu"`` (default). ``"cuda"`` / ``"cuda:N"`` raise
            ``NotImplementedError`` in this build: decoding on the GPU comes
            later; load on the CPU and move with ``.to(device)`` meanwhile.
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
        of row-major shape (ggml's ``ne`` reversed), contiguous, on the CPU.
        Each tensor owns the buffer the library decoded into: it is handed
        to torch without a copy (``torch.from_numpy``, and a dtype view for
        float16/bfloat16).

    Raises:
        OSError: the file cannot be opened or read.
        gguf_dequant.GGUFError: the file is not valid GGUF (with the byte
            offset), a tensor's type cannot be decoded, a tensor is unknown,
            a shard is invalid, the file shrank while being read.
        NotImplementedError: a CUDA device (not in this build).
        ValueError, TypeError: an invalid ``device``, ``dtype`` or ``shard``.

    Example::

        >>> import torch
        >>> from gguf_dequant.torch import load_file
        >>> w = load_file("model.gguf", dtype=torch.bfloat16)
        >>> w["token_embd.weight"].dtype
        torch.bfloat16
    """
    _check_device(device)
    name = _dtype_name(dtype)
    with GGUFFile(filename) as f:
        raw = f._load_raw(name, tensors, shard)
    return {k: _as_torch(v, name) for k, v in raw.items()}
