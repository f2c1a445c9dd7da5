#!/usr/bin/env python3
"""Turns the $OUT folder of one `bash .carry/gpu-run.sh` (see docs/GPU.md) into
bench/results/gpu-<date>-<card>.json and prints Markdown tables for the README.

    python3 scripts/gpu-report.py OUT_DIR              # writes bench/results/gpu-<date>-<card>.json
    python3 scripts/gpu-report.py OUT_DIR --dry-run    # writes to a temporary folder instead
    python3 scripts/gpu-report.py OUT_DIR --out-dir D  # writes into D

Works on partial output: whatever file is missing or unreadable makes its
section "not run" (with the step's exit code and note from steps.tsv where the
step was recorded). A folder holding a README that says SAMPLE (as
scripts/testdata/gpu-out-sample/ does) is reported as a sample: "sample": true
in the JSON and "-SAMPLE" in the file name, so that its fake numbers cannot
pass for a measurement.

Python 3.8+, standard library only.
"""

import argparse
import datetime
import json
import os
import re
import sys
import tempfile

DTYPES = ("f32", "f16", "bf16")
OUT_BYTES = {"f32": 4, "f16": 2, "bf16": 2}
MODELS = ("qwen", "llama")
NOT_RUN = "not run"


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def read_json(path):
    text = read_text(path)
    if not text or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        # A step killed mid-write, or an error printed to stdout.
        return None


def read_steps(out):
    """steps.tsv as a list of dicts (step, exit, seconds, output, note)."""
    text = read_text(os.path.join(out, "steps.tsv"))
    if not text:
        return []
    lines = text.splitlines()
    head = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        if not line.strip():
            continue
        cells = line.split("\t")
        row = dict(zip(head, cells + [""] * (len(head) - len(cells))))
        try:
            row["seconds"] = float(row.get("seconds", "") or 0)
        except ValueError:
            pass
        rows.append(row)
    return rows


def sections(log):
    """log.txt split at the '===== [step] ... =====' banners: {step: text}."""
    found = {}
    if not log:
        return found
    current = None
    for line in log.splitlines():
        m = re.match(r"^===== \[([^\]]+)\]", line)
        if m:
            current = m.group(1)
            found[current] = [line]
        elif current is not None:
            found[current].append(line)
            if re.match(r"^----- \[%s\] exit" % re.escape(current), line):
                current = None
    return {k: "\n".join(v) for k, v in found.items()}


def first(text, pattern):
    if not text:
        return None
    for line in text.splitlines():
        if re.search(pattern, line):
            # Without the banners' and compute-sanitizer's '=====' decorations.
            return re.sub(r"^=+\s*|\s*=+$", "", line.strip())
    return None


LOG_SECTIONS = {}


def step_note(steps, name):
    """'not run' plus why: the step's exit code and note from steps.tsv, and
    the first error line of its part of log.txt."""
    for s in steps:
        if s.get("step") == name:
            why = "exit %s" % s.get("exit")
            if s.get("note"):
                why += ": " + s["note"]
            err = first(LOG_SECTIONS.get(name), r"^error|panicked|TIMED OUT")
            if err and s.get("exit") != "skip":
                why += "; " + err
            if s.get("exit") == "0":
                # Ran, but its output is missing or cut short.
                return "no usable output (%s)" % why
            return "%s (%s)" % (NOT_RUN, why)
    return "%s (no step recorded)" % NOT_RUN


def verdicts(out, steps, log):
    sec = sections(log)
    v = {}
    # Smoke.
    smoke = first(log, r"^SMOKE (PASSED|FAILED)")
    v["smoke"] = smoke or step_note(steps, "smoke")
    # The GPU suite.
    t = sec.get("gpu-tests")
    line = first(t, r"^test result:")
    if line:
        failed = [l.strip() for l in t.splitlines() if re.match(r"^test .* FAILED$", l)]
        v["gpu_tests"] = {"result": line, "failed": failed}
    else:
        why = first(t, r"TIMED OUT|SKIPPED|panicked|error") if t else None
        v["gpu_tests"] = {"result": step_note(steps, "gpu-tests") + (": " + why if why else ""), "failed": []}
    # compute-sanitizer.
    for tool in ("memcheck", "racecheck"):
        t = sec.get(tool)
        line = first(t, r"ERROR SUMMARY|RACECHECK SUMMARY|TIMED OUT|SKIPPED")
        v[tool] = line or step_note(steps, tool)
    # verify.
    v["verify"] = {}
    for d in DTYPES:
        t = sec.get("verify-" + d)
        line = first(t, r"tensors bit-identical|tensors differ|TIMED OUT|^error")
        v["verify"][d] = line or step_note(steps, "verify-" + d)
    return v


def nvidia_smi(log):
    """The nvidia-smi CSV (header + first GPU) as a dict, or None."""
    t = sections(log).get("nvidia-smi")
    if not t:
        return None
    lines = [l for l in t.splitlines() if "," in l and not l.startswith(("=====", "-----"))]
    if len(lines) < 2:
        return None
    head = [h.strip() for h in lines[0].split(",")]
    vals = [x.strip() for x in lines[1].split(",")]
    return dict(zip(head, vals))


def build_info(log):
    info = {}
    for line in (log or "").splitlines():
        if line.startswith("build: ") and "\t" in line:
            k, _, val = line[len("build: "):].partition("\t")
            info[k] = val
    return info


def run_date(log):
    m = re.search(r"^gpu-run: (\d{4}-\d{2}-\d{2})T", log or "", re.M)
    return m.group(1) if m else datetime.date.today().isoformat()


def model_predictions():
    """{gpu: {(type, dtype): predicted ratio to the copy}} from the newest committed
    bench/results/gpu-model-*.json (`gguf-dequant model --json`: the kernels' PTX run
    by the interpreter, a roofline for the H100 and H200), and its file name."""
    results = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "results")
    try:
        names = sorted(n for n in os.listdir(results) if re.match(r"gpu-model-.*\.json$", n))
    except OSError:
        return {}, None
    if not names:
        return {}, None
    doc = read_json(os.path.join(results, names[-1])) or {}
    pred = {}
    for r in doc.get("rows", []):
        for p in r.get("predicted", []):
            pred.setdefault(p.get("gpu"), {})[(r.get("type"), r.get("out"))] = p.get("ratio_to_copy")
    return pred, names[-1]


def model_gpu(card):
    """The model's GPU for a card name: H200 or H100, else None."""
    for g in ("H200", "H100"):
        if card and g in card:
            return g
    return None


def bench_rows(out, steps, predicted=None):
    """{dtype: {"machine":..., "rows": {type: row}} or {"status": not run}};
    with `predicted` ({(type, dtype): ratio}), each row also holds the model's
    predicted ratio to the copy beside the measured one."""
    bench = {}
    for d in DTYPES:
        doc = read_json(os.path.join(out, "bench-%s.json" % d))
        if not doc or not isinstance(doc.get("results"), list):
            bench[d] = {"status": step_note(steps, "bench-" + d)}
            continue
        rows = {}
        for r in doc["results"]:
            if r.get("device") != "cuda":
                continue
            ob = OUT_BYTES.get(r.get("dtype", d), 4)
            row = {
                "melem_per_s": r.get("melem_per_s"),
                "gb_per_s": r.get("gb_per_s"),
                "copy_melem_per_s": r.get("copy_melem_per_s"),
                "ratio_to_copy": r.get("ratio_to_copy"),
                # our rate over the fastest GPU peer's (candle-core's CUDA), when timed
                "best_peer": r.get("best_peer"),
                "ratio_to_best_peer": r.get("ratio_to_best_peer"),
            }
            # The device-to-device copy of the output's size: bytes read + written.
            cm = r.get("copy_melem_per_s")
            row["copy_gb_per_s"] = round(cm * 1e6 * 2 * ob / 1e9, 1) if cm else None
            gb = r.get("gb_per_s")
            row["fraction_of_copy_bytes"] = round(gb / row["copy_gb_per_s"], 3) if gb and row["copy_gb_per_s"] else None
            if predicted is not None:
                row["predicted_ratio_to_copy"] = predicted.get((r["type"], d))
            rows[r["type"]] = row
        bench[d] = {"status": "ok" if rows else "no cuda rows", "machine": doc.get("machine"), "rows": rows}
    return bench


def load_results(out, steps):
    loads = {}
    for m in MODELS:
        doc = read_json(os.path.join(out, "load-%s.json" % m))
        if not doc or "load_s" not in doc:
            loads[m] = {"status": step_note(steps, "load-" + m)}
            continue
        r = dict(doc)
        r["status"] = "ok"
        if doc.get("load_s"):
            r["compressed_gb_per_s"] = round(doc["compressed_bytes"] / doc["load_s"] / 1e9, 2)
            r["output_gb_per_s"] = round(doc.get("output_bytes", 0) / doc["load_s"] / 1e9, 2)
        loads[m] = r
    return loads


def card_name(devices, smi, bench):
    name = None
    if devices and devices.get("devices"):
        name = devices["devices"][0].get("name")
    if not name and smi:
        name = smi.get("name")
    if not name:
        for b in bench.values():
            name = (b.get("machine") or {}).get("gpu")
            if name:
                break
    return name


def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", (s or "no-gpu").lower()).strip("-") or "no-gpu"


def fmt(x, spec):
    return format(x, spec) if isinstance(x, (int, float)) else "-"


def markdown(report):
    lines = []
    card = report["card"] or "no GPU"
    sample = " (SAMPLE: fake numbers)" if report["sample"] else ""
    lines.append("### Decode throughput on %s, %s%s" % (card, report["date"], sample))
    lines.append("")
    bench = report["bench"]
    types = []
    for d in DTYPES:
        for t in (bench[d].get("rows") or {}):
            if t not in types:
                types.append(t)
    if not types:
        lines.append("bench: " + "; ".join("%s %s" % (d, bench[d]["status"]) for d in DTYPES))
    else:
        lines.append("GB/s: bytes read + written per second by the decode; x copy: that over the same "
                     "run's device-to-device copy of the output's size (bytes read + written).")
        lines.append("")
        if report.get("model"):
            lines.append("")
            lines.append("model: the ratio to the copy that `gguf-dequant model` predicted for this card "
                         "(%s), beside the measured one." % report["model"])
        lines.append("")
        lines.append("| type | " + " | ".join("%s GB/s | x copy | model" % d for d in DTYPES) + " |")
        lines.append("|---|" + "---:|---:|---:|" * len(DTYPES))
        for t in types:
            cells = []
            for d in DTYPES:
                r = (bench[d].get("rows") or {}).get(t)
                if r:
                    cells += [fmt(r["gb_per_s"], ".0f"), fmt(r["fraction_of_copy_bytes"], ".2f"),
                              fmt(r.get("predicted_ratio_to_copy"), ".2f")]
                else:
                    cells += ["-", "-", "-"]
            lines.append("| %s | %s |" % (t, " | ".join(cells)))
        copies = []
        for d in DTYPES:
            rows = bench[d].get("rows") or {}
            c = sorted(r["copy_gb_per_s"] for r in rows.values() if r.get("copy_gb_per_s"))
            copies.append("%s %s" % (d, ("%.0f GB/s" % c[len(c) // 2]) if c else bench[d]["status"]))
        lines.append("")
        lines.append("Device-to-device copy (median over types): " + ", ".join(copies) + ".")
        peers = [(t, d, (bench[d].get("rows") or {}).get(t)) for t in types for d in DTYPES]
        peers = [(t, d, r) for t, d, r in peers if r and r.get("ratio_to_best_peer")]
        if peers:
            lines.append("")
            lines.append("Against the GPU peer (same blocks, same context; >1 is faster than it):")
            lines.append("")
            lines.append("| type | dtype | peer | x peer |")
            lines.append("|---|---|---|---:|")
            for t, d, r in peers:
                lines.append("| %s | %s | %s | %s |" % (t, d, r["best_peer"], fmt(r["ratio_to_best_peer"], ".2f")))
    lines.append("")
    lines.append("### Whole-model load (`load --compare`)")
    lines.append("")
    lines.append("| model | dtype | tensors | compressed MB | load s | GB/s (compressed) | pinned H2D GB/s "
                 "| x bus limit | CPU decode + upload s | speedup |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in MODELS:
        r = report["load"][m]
        if r.get("status") != "ok":
            lines.append("| %s | %s |  |  |  |  |  |  |  |  |" % (m, r["status"]))
            continue
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            m, r.get("dtype", "-"), r.get("tensors", "-"),
            fmt(r.get("compressed_bytes", 0) / 1e6, ".1f"), fmt(r.get("load_s"), ".4f"),
            fmt(r.get("compressed_gb_per_s"), ".1f"), fmt(r.get("pinned_h2d_gb_per_s"), ".1f"),
            fmt(r.get("ratio_to_bus_limit"), ".2f"), fmt(r.get("cpu_decode_and_upload_16bit_s"), ".3f"),
            fmt(r.get("speedup_vs_cpu_decode"), ".1f")))
    lines.append("")
    v = report["verdicts"]
    lines.append("- smoke: %s" % v["smoke"])
    lines.append("- gpu-tests: %s" % v["gpu_tests"]["result"])
    for f in v["gpu_tests"]["failed"]:
        lines.append("  - %s" % f)
    lines.append("- memcheck: %s" % v["memcheck"])
    lines.append("- racecheck: %s" % v["racecheck"])
    for d in DTYPES:
        lines.append("- verify %s: %s" % (d, v["verify"][d]))
    lines.append("")
    lines.append("| step | exit | s | output | note |")
    lines.append("|---|---|---:|---|---|")
    for s in report["steps"]:
        lines.append("| %s | %s | %s | %s | %s |" % (s.get("step"), s.get("exit"), s.get("seconds"),
                                                    s.get("output", ""), s.get("note", "")))
    if not report["steps"]:
        lines.append("| (no steps.tsv: the run did not start) | | | | |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="the $OUT folder of one gpu-run.sh (the device tool's files_at)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--dry-run", action="store_true", help="write the JSON to a temporary folder, not bench/results")
    g.add_argument("--out-dir", help="write the JSON here instead of bench/results")
    args = ap.parse_args()
    out = args.out
    if not os.path.isdir(out):
        sys.exit("gpu-report: %s is not a folder" % out)

    log = read_text(os.path.join(out, "log.txt")) or ""
    LOG_SECTIONS.update(sections(log))
    steps = read_steps(out)
    devices = read_json(os.path.join(out, "devices.json"))
    smi = nvidia_smi(log)
    bench = bench_rows(out, steps)
    predictions, model_file = model_predictions()
    gpu = model_gpu(card_name(devices, smi, bench))
    if gpu in predictions:
        bench = bench_rows(out, steps, predictions[gpu])
    readme = read_text(os.path.join(out, "README.md")) or ""
    report = {
        "source": "scripts/gpu-run.sh output, by scripts/gpu-report.py",
        "sample": "SAMPLE" in readme,
        "date": run_date(log),
        "card": card_name(devices, smi, bench),
        "machine": {
            "nvidia_smi": smi,
            "devices": devices if devices else NOT_RUN,
            "host": next((b["machine"] for b in bench.values() if b.get("machine")), None),
            "build": build_info(log),
            "run_seconds": round(sum(s["seconds"] for s in steps if isinstance(s.get("seconds"), float)), 1),
        },
        "verdicts": verdicts(out, steps, log),
        "bench": bench,
        "model": "%s, %s" % (model_file, gpu) if gpu in predictions else None,
        "load": load_results(out, steps),
        "steps": steps,
    }
    name = "gpu-%s-%s%s.json" % (report["date"], slug(report["card"]), "-SAMPLE" if report["sample"] else "")
    if args.dry_run:
        dest_dir = tempfile.mkdtemp(prefix="gpu-report-")
    elif not args.out_dir and not report["card"]:
        dest_dir = tempfile.mkdtemp(prefix="gpu-report-")
        print("gpu-report: no GPU in this output: nothing for bench/results, writing to %s" % dest_dir)
    elif args.out_dir:
        dest_dir = args.out_dir
    else:
        dest_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "results")
    os.makedirs(dest_dir, exist_ok=True)
    dest = os.path.normpath(os.path.join(dest_dir, name))
    with open(dest, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, sort_keys=False)
        f.write("\n")
    print(markdown(report))
    print()
    print("gpu-report: wrote %s" % dest)


if __name__ == "__main__":
    main()
