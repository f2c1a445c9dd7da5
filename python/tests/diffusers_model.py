"""A tiny Flux-shaped diffusers transformer written to GGUF files of real ggml
blocks (taken from the real-weights fixture), with ggml's own values of those
blocks for the reference: shared by tests/test_diffusers.py and
bench/python_diffusers.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from conftest import REAL_TENSORS
from gguf_writer import write_gguf

#: 1 double and 1 single block, hidden size 256 (4 heads of 64): every
#: linear layer but x_embedder (16 inputs) has rows of a multiple of 256
#: values, so that every type's blocks fit it.
FLUX_CONFIG = dict(
    patch_size=1,
    in_channels=16,
    out_channels=None,
    num_layers=1,
    num_single_layers=1,
    attention_head_dim=64,
    num_attention_heads=4,
    joint_attention_dim=256,
    pooled_projection_dim=256,
    guidance_embeds=False,
    axes_dims_rope=[16, 24, 24],
)

#: The types diffusers 0.42 decodes itself (its dequantize_functions), and
#: types it cannot (its loader refuses them) that gguf-py names.
DIFFUSERS_TYPES = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K",
                   "iq4_nl", "iq4_xs", "bf16"]
OTHER_TYPES = ["iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m", "tq1_0", "tq2_0",
               "mxfp4", "nvfp4", "q1_0"]

_BY_TYPE = {t.type: t for t in REAL_TENSORS}


def write_config(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = dict(FLUX_CONFIG, _class_name="FluxTransformer2DModel", _diffusers_version="0.42.1")
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def quantizable(name: str, shape: Tuple[int, ...]) -> bool:
    return name.endswith(".weight") and len(shape) == 2 and shape[1] % 256 == 0


def write_flux_gguf(path: Path, types, seed: int = 0) -> Dict[str, np.ndarray]:
    """Writes the tiny Flux transformer's state dict (diffusers' names) to
    ``path``: each linear weight whose rows fit in blocks of the next type of
    ``types`` (cycled), every other tensor as f32. Returns the reference
    state dict: ggml's own float32 values of each tensor (row-major)."""
    import torch
    from diffusers import FluxTransformer2DModel

    from gguf_dequant import GGML_TYPES

    torch.manual_seed(seed)
    with torch.device("meta"):
        model = FluxTransformer2DModel(**FLUX_CONFIG)
    rng = np.random.default_rng(seed)
    tensors, reference = [], {}
    i = 0
    for name, p in model.state_dict().items():
        shape = tuple(p.shape)
        n = int(np.prod(shape))
        if quantizable(name, shape):
            src = _BY_TYPE[types[i % len(types)]]
            i += 1
            ty = GGML_TYPES[src.type]
            nbytes = n // ty.block_size * ty.block_bytes
            data = (src.quant * (nbytes // len(src.quant) + 1))[:nbytes]
            # the blocks repeat with the fixture's period, and so do ggml's values
            values = np.resize(src.expected_f32.reshape(-1), n).reshape(shape)
            tensors.append((name, src.type_id, list(reversed(shape)), data))
        else:
            values = (rng.standard_normal(shape) * 0.05 + (1.0 if "norm" in name else 0.0)).astype(np.float32)
            tensors.append((name, 0, list(reversed(shape)), values.tobytes()))
        reference[name] = values
    write_gguf(path, tensors)
    return reference


def flux_inputs(dtype, batch: int = 1, seq: int = 16, txt: int = 8, seed: int = 1):
    import torch

    g = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(batch, seq, 16, generator=g).to(dtype),
        encoder_hidden_states=torch.randn(batch, txt, 256, generator=g).to(dtype),
        pooled_projections=torch.randn(batch, 256, generator=g).to(dtype),
        timestep=torch.full((batch,), 0.5).to(dtype),
        img_ids=torch.zeros(seq, 3),
        txt_ids=torch.zeros(txt, 3),
        return_dict=False,
    )


def reference_model(reference: Dict[str, np.ndarray], dtype):
    """The plain (unquantized) model holding ggml's values, in ``dtype``."""
    import torch
    from diffusers import FluxTransformer2DModel

    model = FluxTransformer2DModel(**FLUX_CONFIG)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in reference.items()})
    return model.to(dtype).eval()


def load_gguf_model(path: Path, config: Path, dtype):
    import torch
    from diffusers import FluxTransformer2DModel, GGUFQuantizationConfig

    return FluxTransformer2DModel.from_single_file(
        str(path),
        config=str(config),
        quantization_config=GGUFQuantizationConfig(compute_dtype=dtype),
        torch_dtype=dtype,
    ).eval()
