"""The torch operators ``torch.ops.gguf_dequant.*``, registered with ``torch.library``.

Importing this module (``gguf_dequant.torch``, ``gguf_dequant.diffusers`` and
:func:`gguf_dequant.dequantize` on a torch tensor import it) defines:

``torch.ops.gguf_dequant.dequantize(Tensor blocks, int ggml_type, SymInt[] shape, ScalarType dtype) -> Tensor``
    Raw ggml blocks (a ``uint8`` tensor of any shape holding exactly the
    blocks of ``prod(shape)`` values) of type id ``ggml_type`` (12 for q4_K,
    ...; :data:`gguf_dequant.GGML_TYPES` lists them) decoded into a new
    contiguous tensor of row-major ``shape`` and ``dtype``
    (``torch.float32``, ``torch.float16`` or ``torch.bfloat16``) on the
    blocks' device.

``torch.ops.gguf_dequant.dequantize_into(Tensor blocks, int ggml_type, Tensor(a!) out) -> ()``
    The same into an existing contiguous tensor ``out`` of one of those
    dtypes, on the blocks' device, holding exactly the blocks' values (any
    shape). Nothing is allocated.

Both have a CPU implementation (the library's SIMD decoders on all cores,
the GIL released), a CUDA one (the library's kernels, launched on torch's
current stream of the device, asynchronously: no host synchronization, and
output memory from torch's caching allocator, so that they can be captured
in a CUDA graph once the device has been used by one call outside the
capture), and a fake implementation (shapes and checks only) for
``torch.compile``, which traces them as single nodes (no graph break) and
for meta tensors. The values are ggml's ``dequantize_row_*`` output to the
bit in float32, rounded to nearest even in float16 and bfloat16.

Bad arguments raise before anything is decoded: ``TypeError`` (blocks that
are not ``uint8``), ``ValueError`` (an unknown type id or dtype, a negative
dimension, tensors on different devices, an ``out`` that is not contiguous),
:class:`gguf_dequant.GGUFError` (a length that does not fit the type and
shape, a type that cannot be decoded).
"""

from __future__ import annotations

from typing import Any, List, Sequence

import torch

from . import _native
from ._core import GGML_TYPES, GGUFError, _TYPES_BY_ID

__all__ = ["dequantize", "dequantize_into"]

_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}

_lib = torch.library.Library("gguf_dequant", "DEF")
_lib.define("dequantize(Tensor blocks, int ggml_type, SymInt[] shape, ScalarType dtype) -> Tensor")
_lib.define("dequantize_into(Tensor blocks, int ggml_type, Tensor(a!) out) -> ()")

_register_fake = getattr(torch.library, "register_fake", None) or torch.library.impl_abstract


# ----------------------------------------------------------------- checks
# Written for real and fake tensors alike (no data is read): the same errors
# eagerly and while torch.compile traces.


def _type(ggml_type: int) -> Any:
    ty = _TYPES_BY_ID.get(ggml_type)
    if ty is None:
        raise ValueError(f"unknown ggml type id {ggml_type}")
    if not ty.decodable:
        raise GGUFError(
            f"type {ty.name} (id {ty.id}) cannot be dequantized: ggml defines no conversion to float for it"
        )
    return ty


def _check_blocks(blocks: torch.Tensor, ggml_type: int, n: Any) -> None:
    """``blocks`` holds exactly the blocks of ``n`` values of the type."""
    if blocks.dtype != torch.uint8:
        raise TypeError(f"blocks must be a uint8 tensor, got {blocks.dtype}")
    ty = _type(ggml_type)
    nbytes = blocks.numel()
    if n % ty.block_size != 0:
        raise GGUFError(
            f"length mismatch: {nbytes} bytes of {ty.name} blocks for {n} elements: {ty.name} stores "
            f"{ty.block_size} elements in {ty.block_bytes} bytes, so that needs a multiple of "
            f"{ty.block_size} elements"
        )
    need = n // ty.block_size * ty.block_bytes
    if nbytes != need:
        raise GGUFError(
            f"length mismatch: {nbytes} bytes of {ty.name} blocks for {n} elements: {ty.name} stores "
            f"{ty.block_size} elements in {ty.block_bytes} bytes, so that needs {need} bytes"
        )


def _check_dtype(dtype: torch.dtype) -> str:
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        raise ValueError(f"dtype {dtype}: gguf-dequant decodes into float32, float16 or bfloat16 only")
    return name


def _check_shape(shape: Sequence[Any]) -> Any:
    n = 1
    for d in shape:
        if d < 0:
            raise ValueError(f"shape {tuple(shape)} has a negative dimension")
        n = n * d
    return n


# ----------------------------------------------------------------- CPU


def _numpy_blocks(blocks: torch.Tensor) -> Any:
    """The blocks as a numpy uint8 array sharing their memory (a contiguous
    copy first where they are strided). Integer tensors never require grad."""
    return (blocks if blocks.is_contiguous() else blocks.contiguous()).numpy()


def _into_cpu(blocks: torch.Tensor, ggml_type: int, out: torch.Tensor, name: str, fresh: bool = False) -> None:
    """Decodes into ``out`` (contiguous: checked by the caller). An ``out``
    the caller gave is written through the caches: a buffer kept and reused
    is mapped already and read again soon (a layer's matmul), and cached
    stores beat non-temporal ones there; a ``fresh`` output gets the
    library's choice (non-temporal stores from 8 MiB)."""
    o = out.detach() if out.requires_grad else out
    dst = o.numpy() if name == "float32" else o.view(torch.int16).numpy()
    _native.dequantize_into(_numpy_blocks(blocks), ggml_type, dst, name, None if fresh else False)


def _dequantize_cpu(blocks: torch.Tensor, ggml_type: int, shape: List[int], dtype: torch.dtype) -> torch.Tensor:
    name = _check_dtype(dtype)
    _check_blocks(blocks, ggml_type, _check_shape(shape))
    out = torch.empty(shape, dtype=dtype, device=blocks.device)
    _into_cpu(blocks, ggml_type, out, name, fresh=True)
    return out


def _dequantize_into_cpu(blocks: torch.Tensor, ggml_type: int, out: torch.Tensor) -> None:
    name = _check_into(blocks, ggml_type, out)
    _into_cpu(blocks, ggml_type, out, name)


def _check_into(blocks: torch.Tensor, ggml_type: int, out: torch.Tensor) -> str:
    name = _check_dtype(out.dtype)
    if out.device != blocks.device:
        raise ValueError(f"out is on {out.device}, the blocks on {blocks.device}: they must be on the same device")
    if not out.is_contiguous():
        raise ValueError("out must be a contiguous tensor (values are written in row-major order)")
    _check_blocks(blocks, ggml_type, out.numel())
    return name


# ----------------------------------------------------------------- CUDA


def _into_cuda(blocks: torch.Tensor, ggml_type: int, out: torch.Tensor, name: str) -> None:
    run = getattr(_native, "dequantize_cuda", None)
    if run is None:
        raise NotImplementedError(
            "dequantize on a CUDA tensor: this build of gguf-dequant has no GPU support "
            "(built without the `cuda` feature)"
        )
    src = blocks if blocks.is_contiguous() else blocks.contiguous()
    dev = src.device
    stream = torch.cuda.current_stream(dev).cuda_stream
    # `src` and `out` stay alive until the decode is queued; torch's caching
    # allocator reuses their memory only in the order of this stream.
    run(src.data_ptr(), src.numel(), ggml_type, out.data_ptr(), out.numel(), name, dev.index, stream)


def _dequantize_cuda(blocks: torch.Tensor, ggml_type: int, shape: List[int], dtype: torch.dtype) -> torch.Tensor:
    name = _check_dtype(dtype)
    _check_blocks(blocks, ggml_type, _check_shape(shape))
    out = torch.empty(shape, dtype=dtype, device=blocks.device)
    _into_cuda(blocks, ggml_type, out, name)
    return out


def _dequantize_into_cuda(blocks: torch.Tensor, ggml_type: int, out: torch.Tensor) -> None:
    name = _check_into(blocks, ggml_type, out)
    _into_cuda(blocks, ggml_type, out, name)


# ----------------------------------------------------------------- fake


def _dequantize_fake(blocks: torch.Tensor, ggml_type: int, shape: List[Any], dtype: torch.dtype) -> torch.Tensor:
    _check_dtype(dtype)
    _check_blocks(blocks, ggml_type, _check_shape(shape))
    return blocks.new_empty(shape, dtype=dtype)


def _dequantize_into_fake(blocks: torch.Tensor, ggml_type: int, out: torch.Tensor) -> None:
    _check_into(blocks, ggml_type, out)


_lib.impl("dequantize", _dequantize_cpu, "CPU")
_lib.impl("dequantize_into", _dequantize_into_cpu, "CPU")
_lib.impl("dequantize", _dequantize_cuda, "CUDA")
_lib.impl("dequantize_into", _dequantize_into_cuda, "CUDA")
_register_fake("gguf_dequant::dequantize", _dequantize_fake, lib=_lib)
_register_fake("gguf_dequant::dequantize_into", _dequantize_into_fake, lib=_lib)

#: The operators themselves (``torch.ops.gguf_dequant.dequantize`` / ``dequantize_into``).
dequantize = torch.ops.gguf_dequant.dequantize
dequantize_into = torch.ops.gguf_dequant.dequantize_into


_fn_modes = getattr(torch._C, "_is_torch_function_mode_enabled", None)
_dispatch_modes = getattr(torch._C, "_len_torch_dispatch_stack", None)


def _direct(*tensors: torch.Tensor) -> bool:
    """Whether a call may run the CPU implementation straight away rather
    than through torch's dispatcher (which costs more than a small decode):
    plain CPU tensors, eagerly, with no torch function or dispatch mode
    (fake tensors, tracing) active. The result is the same either way."""
    if torch.compiler.is_compiling():  # first: what torch.compile traces stops here
        return False
    if _fn_modes is None or _dispatch_modes is None or _fn_modes() or _dispatch_modes():
        return False
    return all(type(t) is torch.Tensor and t.is_cpu for t in tensors)


def dequantize_into_fast(blocks: torch.Tensor, ggml_type: int, out: torch.Tensor) -> None:
    """``torch.ops.gguf_dequant.dequantize_into``, its CPU implementation
    called directly where :func:`_direct` allows."""
    if _direct(blocks, out):
        _dequantize_into_cpu(blocks, ggml_type, out)
    else:
        dequantize_into(blocks, ggml_type, out)


def dequantize_fast(blocks: torch.Tensor, ggml_type: int, shape: List[int], dtype: torch.dtype) -> torch.Tensor:
    """``torch.ops.gguf_dequant.dequantize``, its CPU implementation called
    directly where :func:`_direct` allows."""
    if _direct(blocks):
        return _dequantize_cpu(blocks, ggml_type, shape, dtype)
    return dequantize(blocks, ggml_type, shape, dtype)


_IDS_BY_NAME = {name.lower(): t.id for name, t in GGML_TYPES.items()}


def type_id(ggml_type: Any) -> int:
    """A ggml type name (``"q4_K"``, any case) or id as the id the operators
    take. Pure Python for the names and ids it knows (``torch.compile``
    traces it); anything else gets the library's error."""
    if isinstance(ggml_type, str):
        # ASCII case only, as the library compares names
        found = _IDS_BY_NAME.get(ggml_type.lower()) if ggml_type.isascii() else None
        if found is not None:
            return found
    elif isinstance(ggml_type, int) and not isinstance(ggml_type, bool) and int(ggml_type) in _TYPES_BY_ID:
        return int(ggml_type)
    return int(_native.ggml_type_id(ggml_type))  # raises ValueError / TypeError
