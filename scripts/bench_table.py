#!/usr/bin/env python3
"""Markdown tables of `gguf-dequant bench --json` runs.

    scripts/bench_table.py RUN.json [RUN.json ...] [--extra "LABEL=FILE.json" ...]
    scripts/bench_table.py --fill "LABEL=FILE.json" [--fill ...]

With --fill: one column per file with each type's `ratio_to_fill` (the
decoder's rate over the same run's fill limit; below FILL_TARGET in bold),
then, from the first file, each peer's rate and our ratio to it.
Otherwise, against issue 4's CPU targets:

The RUN files are repeated runs of the same command (single thread, f32, with
`--peers`): Melem/s is their median; ratios are min / median / max over them,
and "met" says whether every run met the target. Each --extra file adds a
column with its `ratio_to_copy` per type (another thread count, output type or
level).
"""

import argparse
import json
import statistics

# ratio to the same run's copy, single thread, f32 output
BANDWIDTH_BOUND = {"q8_0", "q4_0", "q4_K", "tq2_0", "bf16", "f16"}
COPY_TARGET = {True: 1.4, False: 1.0}
PEER_TARGET = 1.5


def rows(path):
    with open(path) as f:
        doc = json.load(f)
    return {r["type"]: r for r in doc["results"] if r["device"] == "cpu"}, doc["machine"]


def spread(values):
    return " / ".join(f"{v:.2f}" for v in (min(values), statistics.median(values), max(values)))


FILL_TARGET = 0.90


def fill_table(labelled):
    files = []
    for label, path in labelled:
        with open(path) as f:
            files.append((label, json.load(f)))
    first = files[0][1]
    peer_names = sorted({p["peer"] for p in first.get("peers", [])})
    peers = {(p["peer"], p["type"]): p for p in first.get("peers", [])}
    head = ["type"] + [f"x fill, {label}" for label, _ in files]
    head += [f"{name} Melem/s, x ours ({files[0][0]})" for name in peer_names]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in (r for r in first["results"] if r["device"] == "cpu"):
        cells = [r["type"]]
        for _, doc in files:
            row = next((x for x in doc["results"] if x["type"] == r["type"] and x["device"] == "cpu"), None)
            ratio = row and row.get("ratio_to_fill")
            cells.append("-" if ratio is None else (f"{ratio:.2f}" if ratio >= FILL_TARGET else f"**{ratio:.2f}**"))
        for name in peer_names:
            p = peers.get((name, r["type"]))
            if p is None:
                cells.append("-")
            else:
                exact = "" if p.get("bit_exact") else " (inexact)"
                cells.append(f"{p['melem_per_s']:.0f}{exact}, {r['melem_per_s'] / p['melem_per_s']:.2f}x")
        print("| " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--extra", action="append", default=[], metavar="LABEL=FILE")
    ap.add_argument("--fill", action="append", default=[], metavar="LABEL=FILE")
    args = ap.parse_args()
    if args.fill:
        return fill_table([e.split("=", 1) for e in args.fill])
    runs = [rows(p)[0] for p in args.runs]
    extras = [(label, rows(path)[0]) for label, path in (e.split("=", 1) for e in args.extra)]

    head = ["type", "Melem/s", "x copy", "target", "met in every run", "fastest peer",
            "x fastest peer", "peer target met in every run"]
    head += [label for label, _ in extras]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for ty in runs[0]:
        rs = [r[ty] for r in runs]
        target = COPY_TARGET[ty in BANDWIDTH_BOUND]
        copy = [r["ratio_to_copy"] for r in rs]
        peers = [r.get("ratio_to_best_peer") for r in rs]
        names = sorted({r.get("best_peer") for r in rs if r.get("best_peer")})
        cells = [
            ty,
            f"{statistics.median(r['melem_per_s'] for r in rs):.0f}",
            spread(copy),
            f"{target}x",
            "yes" if min(copy) >= target else "no",
            ", ".join(names) or "-",
            spread(peers) if None not in peers else "-",
            ("yes" if min(peers) >= PEER_TARGET else "no") if None not in peers else "-",
        ]
        for _, e in extras:
            cells.append(f"{e[ty]['ratio_to_copy']:.2f}" if ty in e else "-")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
