"""gguf_dequant: decode the tensors of GGUF files into numpy arrays and torch tensors.

Every ggml storage type that ggml can dequantize (28 of them: the legacy
quants, the K-quants, the IQ lattice types, TQ, MXFP4/NVFP4, q1_0/q2_0,
f32/f16/bf16), into float32 (bit-identical to ggml's own
``dequantize_row_*``), float16 or bfloat16 (that value rounded to nearest
even), on all CPU cores with SIMD kernels, with the GIL released.

The API follows safetensors'::

    from gguf_dequant.numpy import load_file      # -> dict[str, np.ndarray]
    from gguf_dequant.torch import load_file      # -> dict[str, torch.Tensor]

    weights = load_file("model.gguf", dtype=torch.bfloat16)

plus :class:`GGUFFile` (metadata, tensor infos, zero-copy raw blocks),
:func:`dequantize` (raw blocks to values), and shards for tensor parallelism
(:class:`Shard`, :func:`tp_shard`). Shapes are row-major (ggml's ``ne``
reversed), as gguf-py and transformers use them.

Errors: :class:`GGUFError` (a ``ValueError``) with the library's message,
naming the tensor, the type and the byte offset; ``OSError`` (e.g.
``FileNotFoundError``) for I/O.
"""

from ._core import (
    GGML_TYPES,
    GGMLType,
    GGUFError,
    GGUFFile,
    Shard,
    ShardSpec,
    TensorInfo,
    TPShard,
    dequantize,
    tp_shard,
)
from ._native import __version__

__all__ = [
    "GGML_TYPES",
    "GGMLType",
    "GGUFError",
    "GGUFFile",
    "Shard",
    "ShardSpec",
    "TPShard",
    "TensorInfo",
    "__version__",
    "dequantize",
    "tp_shard",
]
