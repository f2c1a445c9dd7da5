"""diffusers' GGUF layers, decoded by gguf-dequant.

diffusers keeps a GGUF checkpoint's weights quantized (``from_single_file(...,
quantization_config=GGUFQuantizationConfig(compute_dtype=...))``: each
``nn.Linear`` becomes a ``GGUFLinear`` whose weight is a ``GGUFParameter`` of
raw blocks) and dequantizes each layer's weight on every forward pass, with
torch operations written per type. :func:`patch` makes those layers decode
through this package instead:

- every type ggml decodes (diffusers 0.42 has 13: q4_0, q4_1, q5_0, q5_1,
  q8_0, q2_K ... q6_K, iq4_nl, iq4_xs, bf16; loading a file of any other
  type, IQ1/IQ2/IQ3, TQ1_0/TQ2_0, MXFP4, NVFP4, Q1_0, raises in diffusers'
  loader, which the patch lets through);
- ggml's values: decoded straight into the layer's ``compute_dtype``
  (float32 bit-identical to ggml's, float16/bfloat16 that value rounded to
  nearest even; no float32 intermediate), where diffusers computes in its
  own way and rounds through float16 on the way;
- on the CPU, the SIMD decoders on all cores into one buffer per weight
  shape and dtype, per thread, reused from one forward to the next (a fresh
  75 MB tensor per layer per step costs more than decoding it); on a GPU,
  the library's kernels on torch's current stream into memory from torch's
  allocator (capturable in a CUDA graph).

Usage::

    import torch
    from diffusers import FluxTransformer2DModel, GGUFQuantizationConfig
    import gguf_dequant.diffusers

    with gguf_dequant.diffusers.patch():        # for a block ...
        model = FluxTransformer2DModel.from_single_file(
            "flux1-dev-Q4_K.gguf", config=folder,
            quantization_config=GGUFQuantizationConfig(compute_dtype=torch.bfloat16),
            torch_dtype=torch.bfloat16)
        image = pipe(...)

    handle = gguf_dequant.diffusers.patch()     # ... or for good (until handle.remove())

What is replaced, while any patch is in place: ``GGUFLinear.forward`` and
``GGUFLinear.forward_native``, ``dequantize_gguf_tensor`` (in
``diffusers.quantizers.gguf.utils`` and in the quantizer, which use it for
``model.dequantize()``, ``modules_to_not_convert`` and LoRA fusing) and the
list of types the loader accepts (``SUPPORTED_GGUF_QUANT_TYPES``: every
type gguf-py names that this library decodes). The patch is process-wide:
patches of several threads, nested or ending in any order, keep it in place
while any is, and diffusers' own attributes are put back exactly (the very
objects) when the last one ends.

A forward reuses its thread's buffer only where nothing keeps the weight
afterwards: not while autograd records a graph that saves it (grad enabled
and an input that requires grad), not inside ``torch.compile`` (which
traces the functional operator instead). ``patch(reuse_buffers=False)``
turns reuse off; :func:`clear_buffers` frees the calling thread's buffers.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from . import ops
from ._core import GGML_TYPES

__all__ = ["patch", "Patch", "dequantize_parameter", "clear_buffers", "is_patched"]

_DECODED = (torch.float32, torch.float16, torch.bfloat16)


def _diffusers() -> Tuple[Any, Any]:
    try:
        from diffusers.quantizers.gguf import gguf_quantizer, utils
    except ImportError as e:
        raise ImportError(
            "gguf_dequant.diffusers patches diffusers' GGUF layers: pip install diffusers gguf accelerate"
        ) from e
    return utils, gguf_quantizer


# ----------------------------------------------------------------- decoding


def _blocks_and_type(param: torch.Tensor) -> Tuple[torch.Tensor, int, Tuple[int, ...]]:
    """A GGUFParameter's blocks as a plain uint8 tensor (no copy), its type id
    and the shape of its values."""
    qt = int(param.quant_type)
    shape = tuple(int(d) for d in param.quant_shape)
    with torch._C.DisableTorchFunctionSubclass():
        blocks = param.detach()
    if blocks.dtype != torch.uint8:
        blocks = blocks.view(torch.uint8)
    return blocks, qt, shape


def dequantize_parameter(param: torch.Tensor, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """A diffusers ``GGUFParameter`` (or any tensor with ``quant_type`` and
    ``quant_shape``) decoded into a new tensor of ``dtype`` (float32 by
    default) on its device; a tensor without ``quant_type`` is returned as it
    is (``.to(dtype)`` when a dtype is given), as diffusers'
    ``dequantize_gguf_tensor`` does."""
    if getattr(param, "quant_type", None) is None:
        return param if dtype is None else param.to(dtype)
    blocks, qt, shape = _blocks_and_type(param)
    want = torch.float32 if dtype is None else dtype
    decode = want if want in _DECODED else torch.float32
    w = ops.dequantize_fast(blocks, qt, list(shape), decode)
    return w if decode == want else w.to(want)


def _dequantize_gguf_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Stands in for diffusers' ``dequantize_gguf_tensor``: float32 values,
    ggml's to the bit (diffusers returns float16-rounded values for most
    types, which its callers then cast)."""
    return dequantize_parameter(tensor)


_local = threading.local()


def clear_buffers() -> None:
    """Frees the decode buffers of the calling thread (they are made again
    on the next forward that needs them)."""
    _local.__dict__.pop("buffers", None)


def _buffer(shape: Tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    bufs: Optional[Dict[Tuple[Tuple[int, ...], torch.dtype], torch.Tensor]] = getattr(_local, "buffers", None)
    if bufs is None:
        bufs = _local.buffers = {}
    b = bufs.get((shape, dtype))
    if b is None:
        b = bufs[(shape, dtype)] = torch.empty(shape, dtype=dtype)
    return b


def _reusable(blocks: torch.Tensor, inputs: Any) -> bool:
    """Whether this forward may decode into the thread's buffer: on the CPU,
    eagerly, and where no autograd graph will keep the weight."""
    if not _state.reuse or blocks.device.type != "cpu":
        return False
    if torch.compiler.is_compiling():
        return False
    return not (torch.is_grad_enabled() and isinstance(inputs, torch.Tensor) and inputs.requires_grad)


def _weight(param: torch.Tensor, dtype: torch.dtype, inputs: Any) -> torch.Tensor:
    if getattr(param, "quant_type", None) is None:
        return param.to(dtype)
    blocks, qt, shape = _blocks_and_type(param)
    decode = dtype if dtype in _DECODED else torch.float32
    if _reusable(blocks, inputs):
        w = _buffer(shape, decode)
        ops.dequantize_into_fast(blocks, qt, w)
    else:
        w = ops.dequantize_fast(blocks, qt, list(shape), decode)
    return w if decode == dtype else w.to(dtype)


def _forward(self: Any, inputs: torch.Tensor) -> torch.Tensor:
    """``GGUFLinear.forward``: the weight decoded by gguf-dequant into the
    layer's compute dtype, then ``F.linear`` as diffusers does."""
    dtype = self.compute_dtype if self.compute_dtype is not None else torch.float32
    weight = _weight(self.weight, dtype, inputs)
    bias = self.bias.to(dtype) if self.bias is not None else None
    return F.linear(inputs, weight, bias)


# ----------------------------------------------------------------- the patch


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        # (owner, attribute) -> (tokens of the patches that replace it,
        # what the owner's own __dict__ held before the first: the object,
        # or _ABSENT where the attribute was inherited or missing)
        self.patched: Dict[Tuple[Any, str], Tuple[set, Any]] = {}
        self.reuse_tokens: set = set()
        self.all_tokens: set = set()

    @property
    def reuse(self) -> bool:
        # buffers are reused unless every open patch asked not to
        return bool(self.reuse_tokens) or not self.all_tokens


_state = _State()
_ABSENT = object()


def _supported_types(utils: Any) -> List[Any]:
    """Every type gguf-py names that this library decodes, but f32 and f16
    (which diffusers loads as plain tensors), diffusers' own first."""
    import gguf

    ours = {t.id for t in GGML_TYPES.values() if t.decodable and t.name not in ("f32", "f16")}
    out = list(utils.SUPPORTED_GGUF_QUANT_TYPES)
    out += [q for q in gguf.GGMLQuantizationType if int(q) in ours and q not in out]
    return out


def _targets() -> List[Tuple[Any, str, Any]]:
    utils, quantizer = _diffusers()
    return [
        (utils.GGUFLinear, "forward", _forward),
        (utils.GGUFLinear, "forward_native", _forward),
        (utils, "dequantize_gguf_tensor", _dequantize_gguf_tensor),
        (quantizer, "dequantize_gguf_tensor", _dequantize_gguf_tensor),
        (utils, "SUPPORTED_GGUF_QUANT_TYPES", None),  # made at install, from diffusers' own
    ]


def _install(token: object, reuse: bool) -> None:
    targets = _targets()
    with _state.lock:
        _state.all_tokens.add(token)
        if reuse:
            _state.reuse_tokens.add(token)
        for owner, name, ours in targets:
            key = (owner, name)
            entry = _state.patched.get(key)
            if entry is None:
                original = vars(owner).get(name, _ABSENT)
                if ours is None:  # the type list: diffusers' own, extended
                    ours = _supported_types(owner)
                # recorded before the replacement: an interruption between
                # the two is undone by this token's uninstall
                entry = _state.patched[key] = (set(), original)
                setattr(owner, name, ours)
            entry[0].add(token)


def _uninstall(token: object) -> None:
    with _state.lock:
        _state.all_tokens.discard(token)
        _state.reuse_tokens.discard(token)
        for key in list(_state.patched):
            tokens, original = _state.patched[key]
            tokens.discard(token)
            if not tokens:
                owner, name = key
                if original is _ABSENT:
                    delattr(owner, name)
                else:
                    setattr(owner, name, original)
                del _state.patched[key]


def is_patched() -> bool:
    """Whether diffusers' GGUF layers decode through gguf-dequant now."""
    with _state.lock:
        return bool(_state.patched)


class Patch:
    """An installed patch (what :func:`patch` returns): in place from its
    creation until :meth:`remove` or the end of its ``with`` block."""

    def __init__(self, reuse_buffers: bool = True) -> None:
        self._token = object()
        self._removed = False
        try:
            _install(self._token, reuse_buffers)
        except BaseException:
            _uninstall(self._token)
            raise

    def remove(self) -> None:
        """Undoes this patch (diffusers' own code is back once no other
        patch is in place). Calling it again does nothing."""
        if not self._removed:
            self._removed = True
            _uninstall(self._token)

    def __enter__(self) -> "Patch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def patch(reuse_buffers: bool = True) -> Patch:
    """Makes diffusers' GGUF layers decode through gguf-dequant, from now on.

    As a context manager (``with patch(): ...``) it is undone when the block
    ends (also on an exception); otherwise it stays until the returned
    handle's :meth:`Patch.remove`. Patches of several threads and nested
    ones may overlap in any order: diffusers' own code comes back exactly
    when the last one is removed.

    Args:
        reuse_buffers: decode CPU weights into one buffer per shape and dtype
            per thread, reused from one forward to the next (default), rather
            than into a new tensor each time.

    Raises:
        ImportError: diffusers (with gguf-py) is not installed.
    """
    return Patch(reuse_buffers)
