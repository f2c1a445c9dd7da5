"""Tensor-parallel loading of a GGUF file with torch.distributed.

Each rank reads and decodes only its own part of every weight, by the
Megatron rule of ``gguf_dequant.tp_shard`` (llama.cpp's q/k/v/gate/up
projections split by rows, attn_output/ffn_down by columns, the rest whole
on every rank). With ``--check`` (the default) the ranks then gather their
parts and each compares the gathered tensors with a whole load, bit for bit.

    torchrun --nproc_per_node=2 python/examples/torchrun_tp.py model.gguf [--dtype bfloat16]

On the CPU it uses the gloo backend (``--backend nccl`` with GPUs: the
parts are then moved to each rank's GPU before gathering). Prints one line
per rank, and ``OK: ...`` from rank 0 when every tensor matched; exits 1
otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.distributed as dist

import gguf_dequant
from gguf_dequant.torch import load_file

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def as_bits(t: torch.Tensor) -> torch.Tensor:
    """The values' raw bits as int32 (gloo gathers int32; bits compare NaNs too)."""
    if t.element_size() == 4:
        return t.view(torch.int32)
    return t.view(torch.int16).to(torch.int32)


def gather_parts(part: torch.Tensor, numels: list[int], device: torch.device) -> list[torch.Tensor]:
    """Every rank's part (flattened bits), sizes known from the plan; padded
    to the largest, as all_gather takes equal sizes."""
    n = max(numels)
    mine = torch.zeros(n, dtype=torch.int32, device=device)
    mine[: part.numel()] = as_bits(part).reshape(-1).to(device)
    out = [torch.empty(n, dtype=torch.int32, device=device) for _ in numels]
    dist.all_gather(out, mine)
    return [o[:k].cpu() for o, k in zip(out, numels)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", help="a GGUF file")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    ap.add_argument("--backend", default="gloo")
    ap.add_argument("--no-check", action="store_true", help="only load, do not gather and compare")
    args = ap.parse_args()

    dist.init_process_group(args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cpu")
    if args.backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    dtype = DTYPES[args.dtype]
    rule = gguf_dequant.tp_shard(rank, world)  # split="megatron"

    t0 = time.perf_counter()
    part = load_file(args.file, dtype=dtype, shard=rule)
    dt = time.perf_counter() - t0
    with gguf_dequant.GGUFFile(args.file) as f:
        infos = f.tensors
    mine = sum(t.numel() for t in part.values())
    total = sum(i.n_elements for i in infos.values())
    print(
        f"rank {rank}/{world}: {len(part)} tensors, {mine} of {total} values "
        f"({mine / max(total, 1):.0%}) decoded in {dt * 1e3:.1f} ms",
        flush=True,
    )
    if args.no_check:
        dist.destroy_process_group()
        return 0

    whole = load_file(args.file, dtype=dtype)
    bad = []
    for name, info in infos.items():
        shards = [gguf_dequant.tp_shard(r, world)(name, info.shape, info.type) for r in range(world)]
        if shards[0] is None:  # replicated: every rank holds the whole tensor
            if not torch.equal(as_bits(part[name]), as_bits(whole[name])):
                bad.append(name)
            continue
        numels = [(s.rows[1] - s.rows[0]) * (s.cols[1] - s.cols[0]) for s in shards]
        parts = gather_parts(part[name], numels, device)
        # put each rank's part where its shard says, in the (rows, cols) view
        gathered = torch.zeros(info.rows, info.cols, dtype=torch.int32)
        covered = torch.zeros(info.rows, info.cols, dtype=torch.int32)
        for s, p in zip(shards, parts):
            (r0, r1), (c0, c1) = s.rows, s.cols
            gathered[r0:r1, c0:c1] = p.reshape(r1 - r0, c1 - c0)
            covered[r0:r1, c0:c1] += 1
        want = as_bits(whole[name]).reshape(info.rows, info.cols)
        if not (torch.equal(gathered, want) and bool((covered == 1).all())):
            bad.append(name)

    n_bad = torch.tensor([len(bad)], dtype=torch.int32, device=device)
    dist.all_reduce(n_bad)
    if bad:
        print(f"rank {rank}: differ from the whole load: {bad}", file=sys.stderr, flush=True)
    if rank == 0:
        if int(n_bad.item()) == 0:
            print(
                f"OK: {len(infos)} tensors gathered from {world} ranks equal the whole load, to the bit",
                flush=True,
            )
        else:
            print(f"FAILED: {int(n_bad.item())} tensor(s) differ", flush=True)
    dist.destroy_process_group()
    return 0 if int(n_bad.item()) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
