#!/usr/bin/env bash
# Runs every test: the Rust suite (`cargo test`), then the Python package
# (python/, PyO3 + maturin) built as the portable wheel (manylinux2014,
# linked by zig; scripts/wheel-check.sh checks it as users install it),
# installed into the virtual environment .venv/ and tested with pytest
# (python/tests/).
#
#   scripts/test.sh              # everything
#   scripts/test.sh --rust       # cargo test only
#   scripts/test.sh --python     # the wheel and pytest only (extra arguments go to pytest)
#
# .venv is made on first use by scripts/python-env.sh with the pinned
# python/requirements-test.txt (torch included: about 5 GB and a few minutes
# the first time) and reused afterwards. PYTHON picks the interpreter that
# makes it (default python3, 3.11 or later); GDQ_VENV another place for it.
set -euo pipefail
cd "$(dirname "$0")/.."

rust=1 python=1
case "${1:-}" in
    --rust) python=0; shift ;;
    --python) rust=0; shift ;;
esac

if [ "$rust" = 1 ]; then
    echo "== Rust: cargo test"
    cargo test
    echo "(cargo test: done at ${SECONDS} s)"
fi

if [ "$python" = 1 ]; then
    echo "== Python: the test environment (pinned: python/requirements-test.txt)"
    venv=$(scripts/python-env.sh)
    echo "(venv ready at ${SECONDS} s)"

    echo "== Python: build the wheel (maturin, release) and install it"
    # The portable wheel users get: manylinux2014 (glibc 2.17), linked by
    # zig (PyPI's ziglang, in .venv); GDQ_WHEEL_ZIG=0 builds for this
    # machine's glibc with the system's linker instead.
    wheels=target/python-wheels
    rm -rf "$wheels"
    portable=()
    [ "${GDQ_WHEEL_ZIG:-1}" = 0 ] || portable=(--zig --compatibility manylinux2014)
    PATH="$venv/bin:$PATH" "$venv/bin/maturin" build --release --quiet "${portable[@]}" \
        -m python/Cargo.toml --out "$wheels"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --force-reinstall --no-deps "$wheels"/gguf_dequant-*.whl
    echo "(wheel installed at ${SECONDS} s)"

    echo "== Python: pytest"
    # pytest exits 5 when it collects no test: a failure here, as any non-zero.
    (cd python && "$venv/bin/python" -m pytest -p no:cacheprovider "$@" tests)
    echo "(pytest: done at ${SECONDS} s)"
fi
