#!/usr/bin/env bash
# Builds, here, everything the GPU machine runs (it may have no Rust toolchain),
# into .carry/ (git-ignored): the release binary, the GPU test binary, fixtures.
# Then, on the lent GPU machine (device tool, carry [".carry"]):
#     bash .carry/gpu-run.sh        # writes its report under $OUT
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .toolchain/nvidia/cu13/bin/nvcc ] || scripts/install-cuda-toolchain.sh
GDQ_CUDA_ARCHS=${GDQ_CUDA_ARCHS:-80,90} cargo build --release
test_bin=$(GDQ_CUDA_ARCHS=${GDQ_CUDA_ARCHS:-80,90} cargo test --release --test gpu --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu":
        print(m["executable"])')
rm -rf .carry && mkdir -p .carry/tests/fixtures
cp target/release/gguf-dequant .carry/
cp "$test_bin" .carry/gpu-tests
cp tests/fixtures/real-weights.gguf tests/fixtures/real-weights.expected.gguf tests/fixtures/manifest.json .carry/tests/fixtures/
cp scripts/gpu-run.sh .carry/
du -sh .carry
