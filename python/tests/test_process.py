"""What a process can do around a decode: fork, Ctrl-C (issue 23).

A child made by ``fork()`` (multiprocessing's fork start method, PyTorch's
DataLoader workers) decodes correctly whatever the parent did first, also
when the parent was in the middle of a decode in another thread. Ctrl-C gives
``KeyboardInterrupt`` at any moment, the first decode of a process
included, and stops a long decode promptly. Children and interpreters run
under a deadline, so that a hang fails a test instead of hanging the suite.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import gguf_dequant

# a child needs well under a second; past this it is hung
DEADLINE = 120.0


def _q8_0(n: int) -> bytes:
    """q8_0 blocks of ``n`` values: scale 1.0, varied quants."""
    quants = (np.arange(n, dtype=np.int64) * 7 % 251 - 125).astype(np.int8).reshape(-1, 32)
    scale = np.full((n // 32, 1), 0x3C00, dtype="<u2").view(np.uint8)
    return np.concatenate([scale, quants.view(np.uint8)], axis=1).tobytes()


# many of the thread pool's chunks (64 Ki values each)
N = 1 << 21
BLOCKS = _q8_0(N)
WANT = ((np.arange(N, dtype=np.int64) * 7 % 251) - 125).astype(np.float32)


def _decode_ok() -> bool:
    return bool(np.array_equal(gguf_dequant.dequantize(BLOCKS, "q8_0", (N,)), WANT))


def _wait(pid: int) -> int:
    """The exit code of child ``pid``; killed, and -1, past the deadline."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -1


def _fork_and_decode() -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if _decode_ok() else 2
        finally:
            os._exit(code)
    return _wait(pid)


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_forked_child_decodes_after_the_parent():
    assert _decode_ok()  # the parent's threads now exist
    assert _fork_and_decode() == 0, "the forked child hung (-1) or decoded wrong values"


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_forked_child_decodes_while_the_parent_decodes():
    stop = threading.Event()
    decoded = []

    def busy():
        while not stop.is_set():
            decoded.append(_decode_ok())

    t = threading.Thread(target=busy)
    t.start()
    try:
        while not decoded:
            time.sleep(0.001)
        # forked while the other thread is inside decodes (the GIL released)
        codes = [_fork_and_decode() for _ in range(5)]
    finally:
        stop.set()
        t.join()
    assert codes == [0] * 5, "a child forked during a decode hung (-1) or decoded wrong values"
    assert all(decoded)


def _pool_decode(_: int) -> bool:
    return _decode_ok()


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_multiprocessing_fork_workers_decode():
    assert _decode_ok()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        result = pool.map_async(_pool_decode, range(4))
        assert result.get(timeout=DEADLINE) == [True] * 4


# Python installs its Ctrl-C handler (KeyboardInterrupt) only where SIGINT was
# not ignored when it started; a shell's background job, `nohup` or a CI runner
# may start the tests with it ignored, and children inherit that. The
# interpreters these tests signal install the handler first, so they test how
# gguf_dequant meets a KeyboardInterrupt, whatever started them.
WITH_CTRL_C = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def _python(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WITH_CTRL_C + textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _finish(p: subprocess.Popen) -> tuple:
    try:
        out, err = p.communicate(timeout=DEADLINE)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"the interpreter hung; stderr: {err}")
    return p.returncode, out, err


# A fresh interpreter whose first decode is interrupted at the K-th Python
# function call made inside it (by `dequantize` or by anything it runs, such
# as numpy's set-up of its C API): a KeyboardInterrupt there is what Ctrl-C
# at that moment gives. Prints how it ended.
FIRST_DECODE = """
    import sys
    import numpy as np
    import gguf_dequant

    K = int(sys.argv[1])
    blocks = np.zeros(34 * 8, np.uint8)
    calls = 0

    def interrupt(frame, event, arg):
        global calls
        if event == "call":
            calls += 1
            if calls == K:
                raise KeyboardInterrupt

    try:
        sys.setprofile(interrupt)
        out = gguf_dequant.dequantize(blocks, "q8_0", (256,))
        sys.setprofile(None)
        print("decoded", out.shape == (256,) and not out.any())
    except KeyboardInterrupt:
        print("KeyboardInterrupt")
    except BaseException as e:
        print("other", type(e).__name__, e)
"""


def test_interrupt_at_any_point_of_the_first_decode_is_keyboard_interrupt():
    seen = []
    for k in range(1, 200):
        p = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(FIRST_DECODE), str(k)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        code, out, err = _finish(p)
        assert "panicked" not in err and "PanicException" not in out, f"call {k}: {out} {err}"
        assert code == 0 and out.strip() in ("KeyboardInterrupt", "decoded True"), f"call {k}: {out} {err}"
        seen.append(out.strip())
        if out.strip() == "decoded True":  # past the last call: every point was tried
            break
    assert seen[-1] == "decoded True" and seen.count("KeyboardInterrupt") == len(seen) - 1


# A real SIGINT (another process's Ctrl-C) at several moments of a fresh
# interpreter's import and first decodes (or, late, of its wait after them).
SIGNALLED = f"""
    import time
    import numpy as np  # (numpy's own import turns a KeyboardInterrupt into an ImportError)
    try:
        print("ready", flush=True)
        import gguf_dequant
        blocks = np.zeros(34 * (1 << 15), np.uint8)
        for _ in range(20):
            gguf_dequant.dequantize(blocks, "q8_0", (1 << 20,))
        time.sleep({DEADLINE})
        print("not interrupted")
    except KeyboardInterrupt:
        print("KeyboardInterrupt")
"""


# What `import gguf_dequant` runs through `exec` of source text (code named
# "<string>"): CPython 3.11 takes a KeyboardInterrupt raised inside one as
# unhandled even where the program handles it, and kills itself with SIGINT at
# exit (what `dataclasses` did in our import, one Ctrl-C in eight at the
# start of the test below).
EXEC_OF_TEXT = """
    import sys
    import numpy  # not ours
    seen = []
    def hook(event, args):
        if event == "exec" and getattr(args[0], "co_filename", None) == "<string>":
            seen.append(args[0].co_name)
    sys.addaudithook(hook)
    import gguf_dequant
    print(seen)
"""


def test_the_import_runs_no_exec_of_text():
    code, out, err = _finish(_python(EXEC_OF_TEXT))
    assert code == 0, err
    assert out.strip() == "[]", out


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.1, 0.2, 0.4])
def test_sigint_during_import_and_first_decodes(delay):
    p = _python(SIGNALLED)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    code, out, err = _finish(p)
    assert "panicked" not in err and "PanicException" not in err, err
    assert (code, out.strip()) == (0, "KeyboardInterrupt"), (out, err)


# One long decode, timed whole (the faster of two), then interrupted a fifth
# of the way through: how long it took to stop, as a fraction of the whole
# (no absolute time).
LONG_DECODE = """
    import os, signal, threading, time
    import numpy as np
    import gguf_dequant

    n = 1 << 26
    blocks = np.zeros(n // 32 * 34, np.uint8)

    def timed():
        t0 = time.perf_counter()
        gguf_dequant.dequantize(blocks, "q8_0", (n,), "float16")
        return time.perf_counter() - t0

    whole = min(timed(), timed())
    threading.Timer(whole / 5, os.kill, (os.getpid(), signal.SIGINT)).start()
    t0 = time.perf_counter()
    try:
        gguf_dequant.dequantize(blocks, "q8_0", (n,), "float16")
        print("not interrupted")
    except KeyboardInterrupt:
        print((time.perf_counter() - t0) / whole)
"""


def test_a_long_decode_stops_promptly_on_ctrl_c():
    code, out, err = _finish(_python(LONG_DECODE))
    assert code == 0, err
    # stopped about a fifth of the way (the signal's moment plus a piece), far
    # before the end; without the pieces it ran to the end (1.0)
    assert float(out) < 0.6, out
