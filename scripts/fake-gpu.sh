#!/usr/bin/env bash
# The crate's real GPU code path (cudarc, src/gpu/, the CLI's `--device cuda`)
# run against fakecuda, the software CUDA driver of this workspace
# (fakecuda/): a strict stand-in for libcuda whose kernels run in the PTX
# interpreter. Needs the kernels' PTX (nvcc: scripts/install-cuda-toolchain.sh).
#
#   scripts/fake-gpu.sh            # build, then the GPU suite and the CLI commands
#
# Nothing here is a GPU measurement: the devices are named as the software
# driver's, and bench's timings are the interpreter's. What only a GPU shows
# (speed, the hardware's own faults, torch's CUDA kernels in the Python tests)
# is README's "GPU" section.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
start=$SECONDS

echo "== fakecuda: build the software driver, the GPU suite and the CLI"
cargo build -p fakecuda
# Also builds target/debug/gguf-dequant (cargo builds the binary for the
# integration tests, with the features `cargo test` builds everything with:
# after scripts/test.sh, nothing to rebuild).
cargo test --test gpu --no-run

# cudarc opens libcuda.so (then libcuda.so.1, ...) by name through the loader's
# search path: a directory holding only those two names, first on it.
lib=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$lib" "$work"' EXIT
ln -s "$(realpath "$target/debug/libfakecuda.so")" "$lib/libcuda.so"
ln -s "$(realpath "$target/debug/libfakecuda.so")" "$lib/libcuda.so.1"
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Leaks, frees of memory queued work still uses, faults of queued work: the
# driver appends each to this file, which must stay empty.
export FAKECUDA_REPORT="$work/violations.txt"
: >"$FAKECUDA_REPORT"
export FAKECUDA_DEVICES=2

bin="$target/debug/gguf-dequant"
fixture=tests/fixtures/real-weights.gguf
run() {
    echo "+ gguf-dequant $*"
    "$bin" "$@"
}

echo "== devices (the software driver's, named so)"
run devices | tee "$work/devices.txt"
grep -q "SOFTWARE CUDA driver" "$work/devices.txt" || {
    echo "devices does not say the driver is the software one" >&2
    exit 1
}

echo "== the GPU suite, a GPU required (GDQ_REQUIRE_GPU=1)"
GDQ_REQUIRE_GPU=1 cargo test --test gpu -- --test-threads 2

echo "== the CLI on the fixtures, --device cuda, three dtypes"
for dtype in f32 f16 bf16; do
    run verify "$fixture" --device cuda --dtype "$dtype"
    run convert "$fixture" --device cuda --dtype "$dtype" -o "$work/cuda-$dtype.safetensors"
    run convert "$fixture" --device cpu --dtype "$dtype" -o "$work/cpu-$dtype.safetensors"
    cmp "$work/cuda-$dtype.safetensors" "$work/cpu-$dtype.safetensors"
    echo "convert --device cuda --dtype $dtype: the same bytes as the CPU's"
done

echo "== load on a small synthetic model: --compare, and two ranks on device 0, and one on each device"
run synth --like tiny-llama-q4_k_m "$work/tiny.gguf"
run load "$work/tiny.gguf" --compare
run load "$work/tiny.gguf" --world 2 --devices 0,0
run load "$work/tiny.gguf" --world 2 --devices 0,1

echo "== bench --device cuda (the interpreter's timings: meaningless as GPU speed)"
run bench --device cuda --type q4_k --type q8_0 --elems 65536 --runs 1

if [ -s "$FAKECUDA_REPORT" ]; then
    echo "the software driver reported violations:" >&2
    cat "$FAKECUDA_REPORT" >&2
    exit 1
fi
echo "== fakecuda: all passed, no violation reported ($((SECONDS - start)) s)"
