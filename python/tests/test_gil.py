"""Decoding releases the GIL: another Python thread runs while a large decode does.

A second thread records the times at which it runs Python code. If the decode
held the GIL, that thread could run only before the call enters Rust (for at
most a switch interval, set to 0.5 ms here) or after it returns; so it must
have run somewhere in the middle half of the decode, which lasts at least
tens of milliseconds (the decode is made larger until it does)."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

import gguf_dequant
from gguf_writer import write_gguf

TYPE, BLOCK_ELEMS, BLOCK_BYTES = "iq2_xxs", 256, 66  # one of the slowest types to decode


def _runs_during(call) -> tuple:
    stamps = []
    started, stop = threading.Event(), threading.Event()

    def other():
        started.set()
        last = 0.0
        while not stop.is_set():
            now = time.perf_counter()
            if now - last > 0.0002:
                stamps.append(now)
                last = now

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    th = threading.Thread(target=other, daemon=True)
    th.start()
    try:
        started.wait()
        t0 = time.perf_counter()
        call()
        t1 = time.perf_counter()
    finally:
        stop.set()
        th.join()
        sys.setswitchinterval(old)
    q = (t1 - t0) / 4
    inside = [s for s in stamps if t0 + q < s < t1 - q]
    return t1 - t0, len(inside), len(stamps)


def _check(make_call):
    n = 1 << 24
    while True:
        dur, inside, total = _runs_during(make_call(n))
        if dur >= 0.08 or n >= 1 << 28:
            break
        n *= 2
    assert dur >= 0.02, f"the decode of {n} elements took only {dur * 1e3:.1f} ms"
    assert inside > 0, (
        f"no other Python thread ran during the middle half of a {dur * 1e3:.0f} ms decode "
        f"of {n} elements ({total} runs in all): the GIL was held"
    )


def test_dequantize_releases_the_gil():
    def make(n):
        blocks = np.zeros(n // BLOCK_ELEMS * BLOCK_BYTES, np.uint8)
        return lambda: gguf_dequant.dequantize(blocks, TYPE, (n // 4096, 4096), "bfloat16")

    _check(make)


def test_load_file_releases_the_gil(tmp_path):
    import gguf_dequant.numpy

    def make(n):
        path = tmp_path / f"big-{n}.gguf"
        write_gguf(path, [("big", 16, [4096, n // 4096], bytes(n // BLOCK_ELEMS * BLOCK_BYTES))])
        return lambda: gguf_dequant.numpy.load_file(path, dtype="bfloat16")

    _check(make)
