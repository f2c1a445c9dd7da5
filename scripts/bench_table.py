#!/usr/bin/env python3
"""Markdown table of `gguf-dequant bench --json` runs, against issue 4's CPU targets.

    scripts/bench_table.py RUN.json [RUN.json ...] [--extra "LABEL=FILE.json" ...]

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--extra", action="append", default=[], metavar="LABEL=FILE")
    args = ap.parse_args()
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
