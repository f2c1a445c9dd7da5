#!/usr/bin/env python3
"""Per-forward dequantization of Flux-sized weights: diffusers' own GGUF layer
against the same layer patched by ``gguf_dequant.diffusers``, same process,
same tensors, in one run.

    .venv/bin/python bench/python_diffusers.py --json bench/results/python-diffusers-DATE.json
    .venv/bin/python bench/python_diffusers.py --device cuda --json ...   # on a GPU
    .venv/bin/python bench/python_diffusers.py --table RESULTS.json       # the README's table

Needs the package built into the interpreter's environment (``scripts/test.sh
--python``) and diffusers, gguf, accelerate (python/requirements-test.txt).

**What is timed.** For each weight shape (out, in) of Flux (3072x3072,
3072x12288, 12288x3072) and each type (q4_K, q5_K, q6_K, q8_0, q4_0, iq4_xs),
a diffusers ``GGUFLinear`` (compute dtype bfloat16, no bias) holding a
``GGUFParameter`` of that type, as ``from_single_file`` makes it, runs a
forward at batch 1 (an input of shape (1, in)):

- *diffusers*: its own ``forward`` (``dequantize_gguf_tensor``, ``.to(bf16)``,
  ``F.linear``);
- *ours*: the same layer object inside ``gguf_dequant.diffusers.patch()``
  (decoded into bfloat16 in the thread's reused buffer, then ``F.linear``).

And the decode alone: diffusers' ``dequantize_gguf_tensor(w).to(bf16)``;
``torch.ops.gguf_dequant.dequantize_into`` into a kept buffer (*ours into*);
``gguf_dequant.dequantize(..., dtype=torch.bfloat16)`` into a new tensor
(*ours new*, what a new user calls); the matmul alone (``F.linear`` with the
decoded weight); and references: ``torch.empty(...).fill_(1)`` (a new tensor
allocated and first touched) and ``dst.copy_(src)`` of a bfloat16 tensor of
that size (the copy bandwidth: read + write). On a GPU every step is timed
with CUDA events after a synchronization, and the rates in GB/s count the
blocks read plus the bfloat16 written, against the copy's read + write.

Medians of ``--runs`` repetitions (diffusers: ``--runs-theirs``), the two
alternating (each diffusers forward is followed by ours) after one warm-up
each. The blocks are the real-weights fixture's ggml blocks of the type,
repeated to the size (valid blocks, real values).

**Values.** For each type, the decoded weight of diffusers (in bfloat16,
after its own ``.to``) against ggml's float32 values rounded to bfloat16
(ours, which the test suite checks to the bit against ggml): the share of
values that differ, and the largest difference relative to the weight's
largest magnitude.

**Overhead.** The time of one call on one block (``dequantize_into`` of 256
q4_K values) and of a patched forward on a 256x256 layer: what our code
costs per call apart from decoding.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python" / "tests"))

SHAPES = [(3072, 3072), (3072, 12288), (12288, 3072)]
TYPES = ["q4_K", "q5_K", "q6_K", "q8_0", "q4_0", "iq4_xs"]
GEOMEAN_TYPES = ["q4_K", "q6_K", "q8_0"]


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev):
    """Seconds one call of ``fn`` takes (CUDA events on a GPU)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        return a.elapsed_time(b) / 1e3
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_of(fn, runs, dev):
    fn()  # warm-up
    return statistics.median(timed(fn, dev) for _ in range(runs))


def make_layer(ty_name, shape, dev):
    import gguf
    from conftest import REAL_TENSORS
    from diffusers.quantizers.gguf.utils import GGUFLinear, GGUFParameter

    from gguf_dequant import GGML_TYPES

    out_f, in_f = shape
    src = next(t for t in REAL_TENSORS if t.type == ty_name)
    ty = GGML_TYPES[ty_name]
    row_bytes = in_f // ty.block_size * ty.block_bytes
    nbytes = out_f * row_bytes
    data = np.frombuffer((src.quant * (nbytes // len(src.quant) + 1))[:nbytes], np.uint8)
    blocks = torch.from_numpy(data.copy()).reshape(out_f, row_bytes).to(dev)
    layer = GGUFLinear(in_f, out_f, bias=False, compute_dtype=torch.bfloat16)
    layer.weight = GGUFParameter(blocks, quant_type=gguf.GGMLQuantizationType(ty.id))
    layer.requires_grad_(False)
    return layer, blocks, ty


def bench_one(ty_name, shape, dev, runs, runs_theirs):
    import gguf_dequant
    import gguf_dequant.diffusers as gd
    from diffusers.quantizers.gguf.utils import dequantize_gguf_tensor

    layer, blocks, ty = make_layer(ty_name, shape, dev)
    out_f, in_f = shape
    n = out_f * in_f
    x = torch.randn(1, in_f, dtype=torch.bfloat16, device=dev)
    r = {"type": ty_name, "shape": [out_f, in_f], "elements": n, "block_bytes": blocks.numel()}

    with torch.inference_mode():
        # forwards, alternating: diffusers', then ours (patched) several times
        theirs, ours = [], []
        layer(x)
        with gd.patch():
            layer(x)
        per = max(1, runs // runs_theirs)
        for _ in range(runs_theirs):
            theirs.append(timed(lambda: layer(x), dev))
            with gd.patch():
                for _ in range(per):
                    ours.append(timed(lambda: layer(x), dev))
        r["forward_diffusers_s"] = statistics.median(theirs)
        r["forward_ours_s"] = statistics.median(ours)
        # the fastest of each: what a machine without other jobs gives
        # (this one is shared; the scheduler's 4 ms slices show in medians)
        r["forward_diffusers_min_s"] = min(theirs)
        r["forward_ours_min_s"] = min(ours)

        # the decode alone
        r["decode_diffusers_s"] = median_of(
            lambda: dequantize_gguf_tensor(layer.weight).to(torch.bfloat16), runs_theirs, dev)
        buf = torch.empty(shape, dtype=torch.bfloat16, device=dev)
        r["decode_ours_into_s"] = median_of(
            lambda: torch.ops.gguf_dequant.dequantize_into(blocks, ty.id, buf), runs, dev)
        r["decode_ours_new_s"] = median_of(
            lambda: gguf_dequant.dequantize(blocks, ty_name, shape, dtype=torch.bfloat16), runs, dev)
        r["matmul_s"] = median_of(lambda: F.linear(x, buf), runs, dev)
        r["alloc_fill_s"] = median_of(
            lambda: torch.empty(shape, dtype=torch.bfloat16, device=dev).fill_(1), runs, dev)
        src = torch.ones(shape, dtype=torch.bfloat16, device=dev)
        r["copy_s"] = median_of(lambda: buf.copy_(src), runs, dev)

        # values: diffusers' bf16 weight against ggml's values in bf16
        ggml = torch.ops.gguf_dequant.dequantize(blocks, ty.id, list(shape), torch.float32)
        ggml_bf16 = ggml.to(torch.bfloat16)
        ours_w = gguf_dequant.dequantize(blocks, ty_name, shape, dtype=torch.bfloat16)
        assert torch.equal(ours_w.view(torch.int16), ggml_bf16.view(torch.int16))
        theirs_w = dequantize_gguf_tensor(layer.weight).to(torch.bfloat16)
        diff = theirs_w.view(torch.int16) != ggml_bf16.view(torch.int16)
        r["diffusers_values_differing"] = diff.float().mean().item()
        r["diffusers_max_rel_diff"] = (
            (theirs_w.float() - ggml).abs().max() / ggml.abs().max()).item()
    _sync(dev)
    gd.clear_buffers()
    return r


def overhead(dev, runs):
    import gguf_dequant.diffusers as gd
    from conftest import REAL_TENSORS

    q = next(t for t in REAL_TENSORS if t.type == "q4_K")
    one = torch.frombuffer(bytearray(q.quant[:144]), dtype=torch.uint8).to(dev)
    out = torch.empty(256, dtype=torch.bfloat16, device=dev)
    calls = 1000
    f = lambda: [torch.ops.gguf_dequant.dequantize_into(one, 12, out) for _ in range(calls)]  # noqa: E731
    into = median_of(f, runs, dev) / calls
    layer, _, _ = make_layer("q4_K", (256, 256), dev)
    x = torch.randn(1, 256, dtype=torch.bfloat16, device=dev)
    with torch.inference_mode(), gd.patch():
        fwd = median_of(lambda: [layer(x) for _ in range(calls)], runs, dev) / calls
    with torch.inference_mode():
        fwd_theirs = median_of(lambda: [layer(x) for _ in range(calls)], runs, dev) / calls
    return {"dequantize_into_one_block_s": into, "forward_256x256_ours_s": fwd,
            "forward_256x256_diffusers_s": fwd_theirs}


def n_of(r) -> int:
    return int(r["elements"])


def table(data) -> str:
    """The README's markdown table of a result file."""
    lines = ["| weight | type | diffusers forward | ours forward | ours faster | fastest of each: faster | "
             "decode into (ours) | decode new (ours) | decode (diffusers) | matmul | diffusers values != ggml |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in data["rows"]:
        n = r["elements"]
        lines.append(
            f"| {r['shape'][0]}x{r['shape'][1]} | {r['type']} | {r['forward_diffusers_s']*1e3:.1f} ms | "
            f"{r['forward_ours_s']*1e3:.2f} ms | **{r['forward_diffusers_s']/r['forward_ours_s']:.1f}x** | "
            f"{r['forward_diffusers_min_s']/r['forward_ours_min_s']:.1f}x | "
            f"{n/r['decode_ours_into_s']/1e9:.2f} Gelem/s | {n/r['decode_ours_new_s']/1e9:.2f} Gelem/s | "
            f"{n/r['decode_diffusers_s']/1e9:.3f} Gelem/s | {r['matmul_s']*1e3:.2f} ms | "
            f"{100*r['diffusers_values_differing']:.1f}% |")
    s = data["summary"]
    lines.append("")
    for tag, what in (("", "medians"), ("_of_fastest", "fastest of each")):
        lines.append(f"Forward, ours over diffusers ({what}): geometric mean over q4_K, q6_K, q8_0 (3 shapes "
                     f"each) **{s['forward_speedup_geomean_q4K_q6K_q80' + tag]:.1f}x**; least per type: " +
                     ", ".join(f"{k.rsplit('_min_', 1)[1][:len(k.rsplit('_min_', 1)[1]) - len(tag)]} {v:.1f}x"
                               for k, v in s.items() if "_min_" in k and k.endswith(tag)
                               and (tag or not k.endswith("_of_fastest"))) + ".")
    o = data["overhead"]
    lines.append(f"Per call: `dequantize_into` of one q4_K block {o['dequantize_into_one_block_s']*1e6:.0f} us "
                 f"(through torch's dispatcher); a patched 256x256 forward {o['forward_256x256_ours_s']*1e6:.0f} us, "
                 f"diffusers' {o['forward_256x256_diffusers_s']*1e6:.0f} us.")
    return "\n".join(lines)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        print(table(json.loads(Path(sys.argv[2]).read_text())))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--runs-theirs", type=int, default=5)
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--shapes", default=",".join(f"{a}x{b}" for a, b in SHAPES))
    ap.add_argument("--json")
    args = ap.parse_args()
    dev = torch.device(args.device)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    import diffusers

    import gguf_dequant

    rows = []
    for shape in shapes:
        for ty in args.types.split(","):
            r = bench_one(ty, shape, dev, args.runs, args.runs_theirs)
            rows.append(r)
            print(f"{ty:7} {shape[0]}x{shape[1]}: forward diffusers {r['forward_diffusers_s']*1e3:8.2f} ms, "
                  f"ours {r['forward_ours_s']*1e3:6.2f} ms ({r['forward_diffusers_s']/r['forward_ours_s']:5.1f}x); "
                  f"decode into {r['elements']/r['decode_ours_into_s']/1e9:5.2f} Gelem/s, "
                  f"new {r['elements']/r['decode_ours_new_s']/1e9:5.2f}, "
                  f"diffusers {r['elements']/r['decode_diffusers_s']/1e9:5.3f}; "
                  f"matmul {r['matmul_s']*1e3:.2f} ms", flush=True)
            if dev.type == "cuda":
                # bytes moved: the blocks read and the bfloat16 written, against
                # the copy's read + write of the bfloat16 tensor
                ours_bw = (r["block_bytes"] + 2 * n_of(r)) / r["decode_ours_into_s"]
                copy_bw = 4 * n_of(r) / r["copy_s"]
                r["decode_ours_gbps"], r["copy_gbps"] = ours_bw / 1e9, copy_bw / 1e9
                print(f"        GPU: ours {ours_bw/1e9:.0f} GB/s = {ours_bw/copy_bw:.2f} of the copy "
                      f"({copy_bw/1e9:.0f} GB/s); diffusers' decode {r['decode_diffusers_s']*1e3:.2f} ms, "
                      f"ours {r['decode_ours_into_s']*1e3:.3f} ms", flush=True)
    over = overhead(dev, 5)
    print(f"overhead: dequantize_into of one block {over['dequantize_into_one_block_s']*1e6:.1f} us, "
          f"patched forward 256x256 {over['forward_256x256_ours_s']*1e6:.1f} us "
          f"(diffusers' {over['forward_256x256_diffusers_s']*1e6:.1f} us)")

    def ratio(r):
        return r["forward_diffusers_s"] / r["forward_ours_s"]

    def ratio_best(r):
        return r["forward_diffusers_min_s"] / r["forward_ours_min_s"]

    summary = {}
    for tag, f in (("", ratio), ("_of_fastest", ratio_best)):
        gm = [f(r) for r in rows if r["type"] in GEOMEAN_TYPES]
        if gm:
            summary[f"forward_speedup_geomean_q4K_q6K_q80{tag}"] = float(np.exp(np.mean(np.log(gm))))
        for ty in args.types.split(","):
            summary[f"forward_speedup_min_{ty}{tag}"] = min(f(r) for r in rows if r["type"] == ty)
    print(json.dumps(summary, indent=1))
    if args.json:
        env = {
            "device": str(dev),
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "gguf_dequant": gguf_dequant.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "runs": args.runs,
            "runs_theirs": args.runs_theirs,
        }
        Path(args.json).write_text(json.dumps({"env": env, "rows": rows, "overhead": over, "summary": summary},
                                              indent=1) + "\n")


if __name__ == "__main__":
    main()
