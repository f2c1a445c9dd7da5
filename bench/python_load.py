#!/usr/bin/env python3
"""Loading a whole GGUF model into torch tensors on the CPU: gguf-dequant
against gguf-py (what transformers does), side by side in one run; then
transformers' own ``from_pretrained(..., gguf_file=...)`` against the same
with ``gguf_dequant.transformers.patch()``.

    .venv/bin/python bench/python_load.py --gemma /path/gemma3-270m-q4_k_m.gguf \\
        --json bench/results/python-load-DATE.json

Needs the package built into the interpreter's environment
(``scripts/test.sh --python`` does it), ``gguf`` (gguf-py) and, for the
transformers part, ``transformers`` and ``accelerate`` (all pinned in
python/requirements-test.txt), and the release CLI
(``target/release/gguf-dequant``) to write the synthetic model.

**Loaders.** *ours*: ``gguf_dequant.torch.load_file(path, dtype=...)``.
*gguf-py*: ``gguf.GGUFReader(path)``, then per tensor
``gguf.quants.dequantize(t.data, t.tensor_type)`` and ``torch.from_numpy``
in the row-major shape, then ``.to(torch.bfloat16)`` for bfloat16, as
transformers does (transformers also copies every array once more with
``np.copy``; here only the f32 tensors, which gguf-py returns as read-only
views of the file, are copied, so that both loaders return tensors of their
own). Both end with ``{name: tensor}`` of every tensor.

**Method.** Every measured load runs in a fresh subprocess (python -c is
this file with ``--child``), so that each has its own peak memory: the
child imports what its loader needs, reads its resident set (the
*baseline*: the interpreter, torch, numpy), resets the peak
(``/proc/self/clear_refs``), loads, and reports the wall time of the load
and the peak resident set (``VmHWM``) over the load. The loaders alternate
(ours, gguf-py, alloc+fill, alloc+fill, gguf-py, ours, ...), ``--runs`` times each; the table
shows medians. Peak RSS over the output is ``(peak - baseline) / output``,
where output is the sum of the tensors' bytes (1.00 is the least a loader
that returns the tensors can do). gguf-py's resident set includes the file's
pages it reads through its memory map; ours reads with ``pread`` into the
output.

**Values.** A separate child decodes each tensor with both (ours through
``GGUFFile.get_tensor``, gguf-py's ``dequantize`` on the same bytes) and
compares the bits, in float32 and in bfloat16 (gguf-py's float32 through
torch's ``.to(torch.bfloat16)``), for both models and for the synthetic
``all-types`` file (every type, random valid blocks); types gguf-py cannot
decode are listed.

**transformers.** Each child loads the model with
``AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
dtype=float32)`` and the tokenizer with ``AutoTokenizer.from_pretrained``,
timed separately, with or without ``gguf_dequant.transformers.patch()``;
hashes the state dict and the logits of one forward pass over a prompt, and
generates greedily from it: the two ways must give the same hashes and text.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "The capital of France is"
NEW_TOKENS = 16

# ----------------------------------------------------------------- in a child


def _status() -> Dict[str, int]:
    """This process's memory counters from /proc/self/status, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def _start_measuring() -> Dict[str, Any]:
    """The baseline resident set, with the peak reset to it (Linux: writing
    5 to clear_refs resets VmHWM) so that VmHWM afterwards is the load's."""
    import gc

    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    return {"baseline_rss": _status()["VmRSS"], "peak_reset": reset}


def _finish_measuring(m: Dict[str, Any], wall: float, tensors: Dict[str, Any]) -> Dict[str, Any]:
    s = _status()
    return {
        **m,
        "wall_s": wall,
        "peak_rss": s["VmHWM"],
        "rss_file_after": s["RssFile"],
        "n_tensors": len(tensors),
        "output_bytes": sum(t.nelement() * t.element_size() for t in tensors.values()),
    }


def child_ours(path: str, dtype: str) -> Dict[str, Any]:
    import torch

    from gguf_dequant.torch import load_file

    m = _start_measuring()
    t0 = time.perf_counter()
    out = load_file(path, dtype=getattr(torch, dtype))
    wall = time.perf_counter() - t0
    return _finish_measuring(m, wall, out)


def child_ggufpy(path: str, dtype: str) -> Dict[str, Any]:
    import numpy as np
    import torch
    from gguf import GGUFReader
    from gguf.quants import dequantize

    m = _start_measuring()
    t0 = time.perf_counter()
    reader = GGUFReader(path)
    parsed = time.perf_counter()
    out = {}
    for t in reader.tensors:
        w = dequantize(t.data, t.tensor_type)
        if not w.flags.writeable:  # f32: a view of the read-only mapping
            w = np.copy(w)
        x = torch.from_numpy(w).reshape(tuple(reversed([int(d) for d in t.shape])))
        if dtype == "bfloat16":
            x = x.to(torch.bfloat16)
        out[t.name] = x
    wall = time.perf_counter() - t0
    return {**_finish_measuring(m, wall, out), "parse_s": parsed - t0, "decode_s": wall - (parsed - t0)}


def child_alloc_fill(path: str, dtype: str) -> Dict[str, Any]:
    """A reference: the same tensors allocated (``torch.empty``) and written
    once (``fill_``, on torch's threads), nothing read or decoded. On this VM
    first-touch page faults make most of it."""
    import torch

    from gguf_dequant import GGUFFile

    with GGUFFile(path) as f:
        shapes = {name: info.shape for name, info in f.tensors.items()}
    m = _start_measuring()
    t0 = time.perf_counter()
    out = {name: torch.empty(shape, dtype=getattr(torch, dtype)).fill_(1.0) for name, shape in shapes.items()}
    wall = time.perf_counter() - t0
    return _finish_measuring(m, wall, out)


def child_check(path: str) -> Dict[str, Any]:
    """Per type: elements whose bits differ between ours and gguf-py, in
    float32 and in bfloat16; the types gguf-py cannot decode."""
    import gguf
    import numpy as np
    import torch
    from gguf.quants import dequantize

    from gguf_dequant import GGUFFile

    per_type: Dict[str, Dict[str, Any]] = {}
    with GGUFFile(path) as f:
        for name, info in f.tensors.items():
            row = per_type.setdefault(
                info.type,
                {"tensors": 0, "elements": 0, "f32_bits_differ": 0, "bf16_bits_differ": 0, "max_abs_diff": 0.0},
            )
            row["tensors"] += 1
            row["elements"] += info.n_elements
            raw = f.raw(name)
            try:
                qtype = gguf.GGMLQuantizationType(info.type_id)
                if info.type in ("f32", "f16"):
                    data = raw.view(np.float32 if info.type == "f32" else np.float16).reshape(info.shape)
                else:
                    data = raw.reshape(gguf.quant_shape_to_byte_shape(info.shape, qtype))
                theirs = dequantize(data, qtype)
            except (ValueError, NotImplementedError) as e:
                row["gguf_py"] = f"cannot decode: {type(e).__name__}: {e}"
                continue
            ours = f.get_tensor(name, "float32")
            assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
            differ = ours.view(np.uint32) != theirs.view(np.uint32)
            row["f32_bits_differ"] += int(differ.sum())
            if differ.any():
                d = np.abs(ours[differ].astype(np.float64) - theirs[differ].astype(np.float64))
                row["max_abs_diff"] = max(row["max_abs_diff"], float(np.nanmax(d)) if d.size else 0.0)
                row.setdefault("first_differences", []).append(
                    {"tensor": name, "ours": float(ours[differ][0]), "gguf_py": float(theirs[differ][0])}
                )
            ours16 = f.get_tensor(name, "bfloat16").view(np.uint16)
            theirs16 = torch.from_numpy(np.ascontiguousarray(theirs)).to(torch.bfloat16).view(torch.int16).numpy()
            row["bf16_bits_differ"] += int((ours16 != theirs16.view(np.uint16)).sum())
    return {"types": per_type}


def child_transformers(path: str, mode: str) -> Dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    import gguf_dequant.transformers

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    folder, name = os.path.split(os.path.abspath(path))
    m = _start_measuring()
    patch = gguf_dequant.transformers.patch if mode == "patched" else _no_patch
    with patch():
        t0 = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        t1 = time.perf_counter()
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        t2 = time.perf_counter()
    peak = _status()["VmHWM"]

    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    ids = tok(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
        gen = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)
    return {
        "model_s": t1 - t0,
        "tokenizer_s": t2 - t1,
        "baseline_rss": m["baseline_rss"],
        "peak_rss": peak,
        "state_dict_sha256": h.hexdigest(),
        "logits_sha256": hashlib.sha256(logits.numpy().tobytes()).hexdigest(),
        "generated_ids": gen[0].tolist(),
        "generated_text": tok.decode(gen[0][ids.shape[1] :], skip_special_tokens=True),
    }


class _no_patch:
    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        pass


# ----------------------------------------------------------------- the parent


def run_child(*args: str) -> Dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", *args]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        raise SystemExit(f"child {args} failed with {p.returncode}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def summary(runs: List[Dict[str, Any]], key: str) -> Dict[str, Any]:
    xs = [r[key] for r in runs]
    return {"median": statistics.median(xs), "min": min(xs), "runs": xs}


def synth(cli: Path, like: str, out: Path) -> Path:
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(cli), "synth", "--like", like, str(out)], check=True, stdout=subprocess.DEVNULL)
    return out


def versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("gguf-dequant", "torch", "numpy", "gguf", "transformers", "accelerate", "tokenizers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def machine() -> Dict[str, Any]:
    import torch

    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = int(line.split()[1]) * 1024
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_bytes": mem,
        "kernel": platform.release(),
        "torch_threads": torch.get_num_threads(),
        "ours_threads": f"all {os.cpu_count()} cores (rayon)",
        "gguf_py_threads": "1 (numpy)",
    }


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--gemma", type=Path, help="gemma3-270m-q4_k_m.gguf (scripts/fetch-gemma3-270m.sh DIR)")
    ap.add_argument("--models-dir", type=Path, default=ROOT / "target" / "bench-models",
                    help="where the synthetic models are written (default: target/bench-models)")
    ap.add_argument("--cli", type=Path, default=ROOT / "target" / "release" / "gguf-dequant")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--runs", type=int, default=3, help="loads per model and dtype, ours and alloc+fill")
    ap.add_argument("--gguf-py-runs", type=int, default=2, help="loads per model and dtype, gguf-py (slow)")
    ap.add_argument("--tf-runs", type=int, default=2, help="transformers loads per way (0: skip)")
    ap.add_argument("--json", type=Path, help="write the results here")
    a = ap.parse_args()

    if a.child:
        kind, *rest = a.child
        fn = {"ours": child_ours, "gguf-py": child_ggufpy, "alloc+fill": child_alloc_fill, "check": child_check, "transformers": child_transformers}
        print(json.dumps(fn[kind](*rest)))
        return

    started = time.time()
    models: Dict[str, Path] = {}
    if a.gemma:
        models["gemma3-270m-q4_k_m (real)"] = a.gemma
    models["qwen2.5-0.5b-q4_k_m (synthetic)"] = synth(a.cli, "qwen2.5-0.5b-q4_k_m", a.models_dir / "synth-qwen2.5-0.5b-q4_k_m.gguf")
    all_types = synth(a.cli, "all-types", a.models_dir / "synth-all-types.gguf")
    dtypes = a.dtypes.split(",")

    results: Dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "versions": versions(),
        "method": "see bench/python_load.py's docstring",
        "loads": [],
        "values": {},
    }
    for label, path in models.items():
        for dtype in dtypes:
            runs: Dict[str, List[Dict[str, Any]]] = {"ours": [], "gguf-py": [], "alloc+fill": []}
            count = {"ours": a.runs, "gguf-py": a.gguf_py_runs, "alloc+fill": a.runs}
            for i in range(max(count.values())):
                order = ["ours", "gguf-py", "alloc+fill"] if i % 2 == 0 else ["alloc+fill", "gguf-py", "ours"]
                for loader in order:
                    if len(runs[loader]) < count[loader]:
                        runs[loader].append(run_child(loader, str(path), dtype))
            out_bytes = runs["ours"][0]["output_bytes"]
            assert all(r["output_bytes"] == out_bytes for rs in runs.values() for r in rs)
            row: Dict[str, Any] = {"model": label, "file": path.name, "file_bytes": path.stat().st_size,
                                   "dtype": dtype, "output_bytes": out_bytes,
                                   "n_tensors": runs["ours"][0]["n_tensors"]}
            for loader, rs in runs.items():
                row[loader] = {
                    "wall_s": summary(rs, "wall_s"),
                    "baseline_rss": statistics.median(r["baseline_rss"] for r in rs),
                    "peak_rss": summary(rs, "peak_rss"),
                    "peak_over_output": statistics.median((r["peak_rss"] - r["baseline_rss"]) / out_bytes for r in rs),
                    "peak_reset": all(r["peak_reset"] for r in rs),
                }
                if loader == "gguf-py":
                    row[loader]["parse_s"] = summary(rs, "parse_s")
                    row[loader]["decode_s"] = summary(rs, "decode_s")
            row["ours_over_alloc_fill"] = row["ours"]["wall_s"]["median"] / row["alloc+fill"]["wall_s"]["median"]
            row["speedup"] = row["gguf-py"]["wall_s"]["median"] / row["ours"]["wall_s"]["median"]
            row["speedup_decode_only"] = row["gguf-py"]["decode_s"]["median"] / row["ours"]["wall_s"]["median"]
            results["loads"].append(row)
            print(f"{label} {dtype}: ours {row['ours']['wall_s']['median']:.3f} s, gguf-py "
                  f"{row['gguf-py']['wall_s']['median']:.2f} s: {row['speedup']:.1f}x", file=sys.stderr)
        results["values"][label] = run_child("check", str(path))["types"]
    results["values"]["all-types (synthetic)"] = run_child("check", str(all_types))["types"]

    if a.tf_runs and a.gemma:
        tf_runs: Dict[str, List[Dict[str, Any]]] = {"own": [], "patched": []}
        for i in range(a.tf_runs):
            for mode in (["own", "patched"] if i % 2 == 0 else ["patched", "own"]):
                tf_runs[mode].append(run_child("transformers", str(a.gemma), mode))
        tf: Dict[str, Any] = {"model": "gemma3-270m-q4_k_m (real)", "dtype": "float32", "prompt": PROMPT,
                              "new_tokens": NEW_TOKENS}
        for mode, rs in tf_runs.items():
            tf[mode] = {
                "model_s": summary(rs, "model_s"),
                "tokenizer_s": summary(rs, "tokenizer_s"),
                "peak_over_baseline": statistics.median(r["peak_rss"] - r["baseline_rss"] for r in rs),
                **{k: rs[0][k] for k in ("state_dict_sha256", "logits_sha256", "generated_ids", "generated_text")},
            }
        every = tf_runs["own"] + tf_runs["patched"]
        tf["identical"] = all(
            r[k] == every[0][k] for r in every for k in ("state_dict_sha256", "logits_sha256", "generated_ids")
        )
        tf["speedup_model"] = tf["own"]["model_s"]["median"] / tf["patched"]["model_s"]["median"]
        tf["speedup_tokenizer"] = tf["own"]["tokenizer_s"]["median"] / tf["patched"]["tokenizer_s"]["median"]
        results["transformers"] = tf
    results["total_s"] = time.time() - started

    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(results, indent=1) + "\n")
    print(report(results))


def report(r: Dict[str, Any]) -> str:
    """The README's table and paragraphs, in markdown."""
    lines = [
        "| model | dtype | output | ours | gguf-py (parse + decode) | ours faster | allocate + fill | peak RSS over output: ours | gguf-py |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["loads"]:
        o, g = row["ours"], row["gguf-py"]
        lines.append(
            f"| {row['model']} | {row['dtype']} | {gib(row['output_bytes'])} | {o['wall_s']['median']:.2f} s "
            f"| {g['wall_s']['median']:.2f} s ({g['parse_s']['median']:.2f} + {g['decode_s']['median']:.2f}) "
            f"| {row['speedup']:.1f}x ({row['speedup_decode_only']:.1f}x decode only) "
            f"| {row['alloc+fill']['wall_s']['median']:.2f} s "
            f"| {o['peak_over_output']:.2f} | {g['peak_over_output']:.2f} |"
        )
    base = statistics.median(row[k]["baseline_rss"] for row in r["loads"] for k in ("ours", "gguf-py"))
    n = {k: len(r["loads"][0][k]["wall_s"]["runs"]) for k in ("ours", "gguf-py")}
    lines += [
        "",
        f"Medians of {n['ours']} loads (gguf-py: {n['gguf-py']}), each in its own process, alternating; "
        f"*allocate + fill*, a reference: the same tensors made by `torch.empty(...).fill_()`, nothing read "
        f"or decoded (on this VM mostly first-touch page faults, which every loader returning new tensors "
        f"pays). Peak RSS over output is (peak - baseline) / output, the baseline (Python, torch, numpy imported) being about "
        f"{gib(base)}. {r['machine']['cpus']} vCPUs ({r['machine']['cpu']}, KVM guest), torch "
        f"{r['versions'].get('torch')}, numpy {r['versions'].get('numpy')}, gguf-py {r['versions'].get('gguf')}.",
    ]
    same, cannot = [], []
    for model, types in r["values"].items():
        for ty, row in types.items():
            if "gguf_py" in row:
                cannot.append(f"{ty} ({row['gguf_py'].split(': ', 1)[1]})")
            elif row["f32_bits_differ"] or row["bf16_bits_differ"]:
                same.append(f"**{ty} in {model}: {row['f32_bits_differ']} f32 / {row['bf16_bits_differ']} bf16 values differ**")
    lines += [
        "",
        "Values: " + ("; ".join(same) + ". " if same else
                      "every tensor that gguf-py decodes, of both models and of a synthetic file of every "
                      "type (random valid blocks), is bit-identical between the two, in float32 and in "
                      "bfloat16. ")
        + ("gguf-py cannot decode " + "; ".join(sorted(set(cannot))) + "." if cannot else ""),
    ]
    tf = r.get("transformers")
    if tf:
        o, p = tf["own"], tf["patched"]
        lines += [
            "",
            f"transformers {r['versions'].get('transformers')}, Gemma 3 270M Q4_K_M, float32, medians of "
            f"{len(o['model_s']['runs'])}: `AutoModelForCausalLM.from_pretrained(folder, gguf_file=...)` takes "
            f"{o['model_s']['median']:.1f} s, and {p['model_s']['median']:.1f} s inside "
            f"`gguf_dequant.transformers.patch()` ({tf['speedup_model']:.1f}x); `AutoTokenizer` "
            f"{o['tokenizer_s']['median']:.1f} s and {p['tokenizer_s']['median']:.1f} s "
            f"({tf['speedup_tokenizer']:.1f}x); peak memory over the baseline {gib(o['peak_over_baseline'])} "
            f"and {gib(p['peak_over_baseline'])}. "
            + ("The state dicts, the logits and the generated text are identical, to the bit"
               if tf["identical"] else "**The results differ**")
            + f" (\"{tf['prompt']}\" -> \"{o['generated_text'].strip()}\").",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
