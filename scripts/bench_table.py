#!/usr/bin/env python3
"""Markdown tables of `gguf-dequant bench --json` runs.

    scripts/bench_table.py RUN.json [RUN.json ...] [--extra "LABEL=FILE.json" ...]
    scripts/bench_table.py --fill "LABEL=FILE.json[,FILE.json...]" [--fill ...] \
        [--peer "LABEL=FILE.json:PEER" ...]

With --fill: one column per label with each type's `ratio_to_fill` (the
decoder's rate over the same run's fill limit; below FILL_TARGET in bold),
the median over the label's files (repeated runs); then, from the first
label's files, each peer's rate and our ratio to it (medians); then, per
--peer, PEER's rate in FILE (another build of a peer) and our ratio to it.
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


def fill_table(labelled, extra_peers=()):
    """`labelled`: (label, [path, ...]); a label's ratios are the median over
    its files (repeated runs of one command). Peer columns come from the first
    label's files (medians too), then one per `extra_peers` entry, (label,
    path, peer): that peer's rate in another file (another build of it)."""
    files = []
    for label, paths in labelled:
        docs = []
        for path in paths:
            with open(path) as f:
                docs.append(json.load(f))
        files.append((label, docs))
    first = files[0][1]
    peer_names = sorted({p["peer"] for doc in first for p in doc.get("peers", [])})
    head = ["type"] + [f"x fill, {label}" for label, _ in files]
    head += [f"{name} Melem/s, x ours ({files[0][0]})" for name in peer_names]
    head += [f"{label} Melem/s, x ours ({files[0][0]})" for label, _, _ in extra_peers]
    others = []
    for _, path, peer in extra_peers:
        with open(path) as f:
            doc = json.load(f)
        others.append({p["type"]: p for p in doc.get("peers", []) if p["peer"] == peer})
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))

    def ours(doc, ty):
        return next((x for x in doc["results"] if x["type"] == ty and x["device"] == "cpu"), None)

    def peer_cell(ps, our_rate):
        if not ps:
            return "-"
        exact = "" if all(p.get("bit_exact") for p in ps) else " (inexact)"
        rate = statistics.median(p["melem_per_s"] for p in ps)
        return f"{rate:.0f}{exact}, {our_rate / rate:.2f}x"

    for r in (r for r in first[0]["results"] if r["device"] == "cpu"):
        ty = r["type"]
        cells = [ty]
        for _, docs in files:
            ratios = [x["ratio_to_fill"] for x in (ours(d, ty) for d in docs) if x and x.get("ratio_to_fill") is not None]
            if not ratios:
                cells.append("-")
                continue
            ratio = statistics.median(ratios)
            cells.append(f"{ratio:.2f}" if ratio >= FILL_TARGET else f"**{ratio:.2f}**")
        our_rate = statistics.median(ours(d, ty)["melem_per_s"] for d in first)
        for name in peer_names:
            ps = [p for d in first for p in d.get("peers", []) if p["peer"] == name and p["type"] == ty]
            cells.append(peer_cell(ps, our_rate))
        for other in others:
            cells.append(peer_cell([other[ty]] if ty in other else [], our_rate))
        print("| " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--extra", action="append", default=[], metavar="LABEL=FILE")
    ap.add_argument("--fill", action="append", default=[], metavar="LABEL=FILE[,FILE...]")
    ap.add_argument("--peer", action="append", default=[], metavar="LABEL=FILE:PEER")
    args = ap.parse_args()
    if args.fill:
        labelled = [(label, paths.split(",")) for label, paths in (e.split("=", 1) for e in args.fill)]
        extra = []
        for e in args.peer:
            label, rest = e.split("=", 1)
            path, peer = rest.rsplit(":", 1)
            extra.append((label, path, peer))
        return fill_table(labelled, extra)
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
