#!/usr/bin/env bash
# Checks the Python package as a user installs it, without Rust:
#
#   scripts/wheel-check.sh [WHEEL] [-- PYTHON ...]
#
# 1. the wheel (default: the one scripts/test.sh built in target/python-wheels,
#    a manylinux2014 wheel linked by zig) must be tagged manylinux_2_17 and be
#    consistent with that tag by `auditwheel show` (glibc 2.17, no libraries
#    outside the manylinux set);
# 2. `maturin sdist` must make the sdist, holding the crate, the kernels and the
#    package (checked by name; building a wheel from it takes a full build, not
#    done here: `pip wheel gguf_dequant-*.tar.gz` in a fresh venv does it);
# 3. for each interpreter (default: python3), a fresh virtual environment gets
#    the wheel and numpy from PyPI and nothing else, and with a PATH holding
#    no Rust toolchain (checked), outside the source tree, imports the package
#    and decodes the real-weights fixture, every type in three dtypes, to the
#    bit against ggml's values (python/tests/wheel_check.py).
#
# Uses .venv (scripts/python-env.sh) for maturin and auditwheel.
set -euo pipefail
unset CDPATH
cd "$(dirname "$0")/.."
root=$PWD

wheel=
if [ $# -gt 0 ] && [ "$1" != "--" ]; then wheel=$1; shift; fi
[ "${1:-}" = "--" ] && shift
pythons=("$@")
[ ${#pythons[@]} -gt 0 ] || pythons=(python3)

venv=$(scripts/python-env.sh)
if [ -z "$wheel" ]; then
    wheel=$(find target/python-wheels -name 'gguf_dequant-*.whl' | head -n 1)
    [ -n "$wheel" ] || { echo "no wheel in target/python-wheels (scripts/test.sh --python builds it)" >&2; exit 1; }
fi
wheel=$(realpath "$wheel")

echo "== auditwheel show $(basename "$wheel")"
case "$(basename "$wheel")" in
    *manylinux_2_17_x86_64*) ;;
    *) echo "the wheel is not tagged manylinux_2_17 (manylinux2014): $(basename "$wheel")" >&2; exit 1 ;;
esac
report=$("$venv/bin/auditwheel" show "$wheel")
echo "$report"
if ! grep -q 'is consistent with the following platform tag' <<<"$report" ||
   ! tr -s ' \n' ' ' <<<"$report" | grep -q '"manylinux_2_17_x86_64"'; then
    echo "auditwheel does not find the wheel consistent with manylinux_2_17_x86_64" >&2
    exit 1
fi

echo "== sdist"
sdists=target/python-sdist
rm -rf "$sdists"
"$venv/bin/maturin" sdist -m python/Cargo.toml --out "$sdists" >/dev/null 2>&1 || { echo "maturin sdist failed" >&2; "$venv/bin/maturin" sdist -m python/Cargo.toml --out "$sdists"; exit 1; }
sdist=$(find "$sdists" -name 'gguf_dequant-*.tar.gz' | head -n 1)
[ -n "$sdist" ] || { echo "maturin sdist made no sdist" >&2; exit 1; }
listing=$(tar tzf "$sdist")
for f in pyproject.toml python/Cargo.toml python/src/lib.rs python/gguf_dequant/ops.py Cargo.toml build.rs \
         cuda/common.cuh src/lib.rs; do
    grep -qx "gguf_dequant-[^/]*/$f" <<<"$listing" || { echo "the sdist lacks $f" >&2; exit 1; }
done
echo "$(basename "$sdist"): $(du -h "$sdist" | cut -f1), $(wc -l <<<"$listing") files"

# a PATH without Rust: the interpreter's venv, and the system's bin folders
# (checked below to hold no cargo or rustc)
for py in "${pythons[@]}"; do
    echo "== a fresh venv of $py: the wheel and numpy, no Rust"
    tmp=$(mktemp -d)
    "$py" -m venv "$tmp/venv"
    clean_path="$tmp/venv/bin:/usr/local/bin:/usr/bin:/bin"
    if env -i PATH="$clean_path" sh -c 'command -v cargo || command -v rustc'; then
        echo "cargo or rustc is on the clean PATH ($clean_path)" >&2
        exit 1
    fi
    PIP_NO_CACHE_DIR=1 "$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --only-binary :all: "$wheel" numpy
    (cd "$tmp" && env -i HOME="$tmp" PATH="$clean_path" \
        "$tmp/venv/bin/python" "$root/python/tests/wheel_check.py" "$root/tests/fixtures")
    rm -rf "$tmp"
done
