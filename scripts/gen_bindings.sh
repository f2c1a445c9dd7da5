#!/usr/bin/env bash
# Regenerates src/blocks.rs from cuda/blocks.h with bindgen, so that Rust reads the
# same block layouts as the kernels. `--check` compares instead of writing.
# Needs bindgen-cli (cargo install bindgen-cli) and libclang (pip install libclang,
# or Debian's libclang1-14).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${LIBCLANG_PATH:-}" ]; then
    LIBCLANG_PATH=$(python3 -c 'import clang, os; print(os.path.join(os.path.dirname(clang.__file__), "native"))' 2>/dev/null || true)
    export LIBCLANG_PATH
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
{
    echo "//! Block layouts of the GGML formats, generated from cuda/blocks.h by"
    echo "//! scripts/gen_bindings.sh (bindgen); do not edit. CI checks it is fresh."
    echo
    bindgen cuda/blocks.h \
        --allowlist-type 'block_.*' \
        --with-derive-default --no-doc-comments \
        --rust-target 1.80 \
        -- -x c -std=c11
} > "$out"
rustfmt --edition 2021 "$out"
if [ "${1:-}" = "--check" ]; then
    if ! diff -u src/blocks.rs "$out"; then
        echo "src/blocks.rs is stale: run scripts/gen_bindings.sh" >&2
        exit 1
    fi
    echo "src/blocks.rs is fresh"
else
    cp "$out" src/blocks.rs
    echo "wrote src/blocks.rs"
fi
