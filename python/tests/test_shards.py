"""Shards are slices of the whole load, to the bit; the tensor-parallel rule
over two ranks gathers back into the whole; torchrun runs the example."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gguf_dequant
import gguf_dequant.numpy
import gguf_dequant.torch
from gguf_dequant import Shard, tp_shard
from conftest import DTYPES, REAL, REAL_TENSORS, assert_bits_equal, bits

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torchrun_tp.py"


@pytest.mark.parametrize("dtype", DTYPES)
def test_shards_are_slices_of_the_whole(dtype):
    whole = gguf_dequant.numpy.load_file(REAL, dtype=dtype)
    for t in REAL_TENSORS:
        qk = gguf_dequant.GGML_TYPES[t.type].block_size
        full = bits(whole[t.name])  # (64, 1536)
        cases = [
            (Shard(rows=(10, 50)), np.s_[10:50, :]),
            (Shard(cols=(qk, 4 * qk)), np.s_[:, qk : 4 * qk]),
            (Shard(rows=(3, 4), cols=(2 * qk, 1536)), np.s_[3:4, 2 * qk :]),
            ((slice(-5, None), slice(None, qk)), np.s_[-5:, :qk]),
            (Shard(rows=(7, 7)), np.s_[7:7, :]),
        ]
        for spec, sl in cases:
            part = gguf_dequant.numpy.load_file(REAL, dtype=dtype, tensors=[t.name], shard={t.name: spec})
            assert_bits_equal(f"{t.name} {spec} as {dtype}", bits(part[t.name]), full[sl])
        # a shard that is the whole tensor has the tensor's own shape
        same = gguf_dequant.numpy.load_file(REAL, dtype=dtype, tensors=[t.name], shard={t.name: Shard()})
        assert_bits_equal(t.name, bits(same[t.name]), full)


def test_shard_callable_and_get_tensor(llama_file):
    whole = gguf_dequant.torch.load_file(llama_file, dtype=torch.bfloat16)
    seen = []

    def rule(name, shape):
        seen.append((name, shape))
        return (slice(0, 4), None) if len(shape) > 1 else None

    part = gguf_dequant.torch.load_file(llama_file, dtype=torch.bfloat16, shard=rule)
    with gguf_dequant.GGUFFile(llama_file) as f:
        assert seen == [(n, i.shape) for n, i in f.tensors.items()]
        for name, info in f.tensors.items():
            want = whole[name] if len(info.shape) == 1 else whole[name].reshape(-1, info.cols)[:4]
            assert_bits_equal(name, bits(part[name]), bits(want))
        # a 3-D tensor's rows are its first two dimensions flattened
        name = "blk.1.attn_q.weight"
        assert f.tensors[name].shape == (23, 2, 1280)
        got = f.get_tensor(name, "float32", Shard(rows=(5, 40)))
        assert got.shape == (35, 1280)
        assert_bits_equal(name, bits(got), bits(f.get_tensor(name).reshape(-1, 1280)[5:40]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("world", [1, 2, 3])
def test_tp_shards_gather_into_the_whole(llama_file, dtype, world):
    whole = gguf_dequant.numpy.load_file(llama_file, dtype=dtype)
    parts = [gguf_dequant.numpy.load_file(llama_file, dtype=dtype, shard=tp_shard(r, world)) for r in range(world)]
    with gguf_dequant.GGUFFile(llama_file) as f:
        infos = f.tensors
    kinds = {}
    for name, info in infos.items():
        shards = [tp_shard(r, world)(name, info.shape, info.type) for r in range(world)]
        full = bits(whole[name])
        if shards[0] is None:
            kinds[name] = "replicate"
            for p in parts:
                assert_bits_equal(name, bits(p[name]), full)
            continue
        rows_split = shards[0].cols == (0, info.cols)
        kinds[name] = "rows" if rows_split else "cols"
        if world == 1:
            for p in parts:
                assert_bits_equal(name, bits(p[name]), full)
            continue
        pieces = [bits(p[name]) for p in parts]
        sizes = [(s.rows[1] - s.rows[0]) if rows_split else (s.cols[1] - s.cols[0]) for s in shards]
        assert all(n > 0 for n in sizes) and len(set(sizes)) >= 1
        gathered = np.concatenate(pieces, axis=0 if rows_split else 1)
        assert_bits_equal(f"{name} gathered from {world}", gathered, full.reshape(-1, info.cols))
    if world == 1:
        return
    assert kinds["blk.0.attn_q.weight"] == kinds["blk.0.ffn_gate.weight"] == "rows"
    assert kinds["blk.0.attn_output.weight"] == kinds["blk.0.ffn_down.weight"] == "cols"
    assert kinds["token_embd.weight"] == kinds["output.weight"] == kinds["blk.0.attn_norm.weight"] == "replicate"


def test_tp_rule_splits_unevenly_at_blocks():
    # 23 rows over 2 ranks: 12, 11; 1280 columns of q4_K (5 blocks) over 2: 3 blocks, 2 blocks
    assert tp_shard(0, 2)("blk.0.attn_q.weight", (23, 1280), "q4_K") == Shard(rows=(0, 12), cols=(0, 1280))
    assert tp_shard(1, 2)("blk.0.attn_q.weight", (23, 1280), "q4_K") == Shard(rows=(12, 23), cols=(0, 1280))
    assert tp_shard(0, 2)("blk.0.ffn_down.weight", (23, 1280), "q4_K") == Shard(rows=(0, 23), cols=(0, 768))
    assert tp_shard(1, 2)("blk.0.ffn_down.weight", (23, 1280), "q4_K") == Shard(rows=(0, 23), cols=(768, 1280))
    assert tp_shard(1, 2)("blk.0.ffn_norm.weight", (1280,), "f32") is None
    assert tp_shard(1, 2, split="rows")("anything", (4, 8)) == Shard(rows=(2, 4), cols=(0, 8))
    custom = tp_shard(0, 2, split=lambda name, shape: "cols" if name.startswith("x") else "replicate")
    assert custom("x", (4, 64), "q8_0") == Shard(rows=(0, 4), cols=(0, 32))
    assert custom("y", (4, 64), "q8_0") is None
    assert "rank=0, world=2" in repr(custom)


def test_torchrun_example(llama_file, tmp_path):
    env = dict(os.environ)
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(EXAMPLE), str(llama_file), "--dtype", "bfloat16"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "rank 0/2:" in out and "rank 1/2:" in out, out
    assert "OK: 14 tensors gathered from 2 ranks equal the whole load, to the bit" in out, out
