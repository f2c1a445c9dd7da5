#!/usr/bin/env bash
# Runs on the GPU machine from the carried folder: the GPU suite, verify on the
# testdata in three output types, the benchmarks and a whole-model load. Writes
# everything under $OUT and prints a short summary last.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/gdq-out}
mkdir -p "$out"
cd "$here"
bin=./gguf-dequant
{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
    $bin devices
} > "$out/device.txt" 2>&1
GDQ_FIXTURES="$here/tests/fixtures" ./gpu-tests --test-threads 1 > "$out/gpu-tests.txt" 2>&1
echo "gpu-tests exit=$?" >> "$out/gpu-tests.txt"
for d in f32 f16 bf16; do
    $bin verify tests/fixtures/real-weights.gguf --device cuda --dtype $d
done > "$out/verify.txt" 2>&1
$bin bench --device all --json > "$out/bench.json" 2> "$out/bench.err"
$bin synth --like qwen2.5-0.5b-q4_k_m /tmp/qwen.gguf && $bin load /tmp/qwen.gguf --compare --json > "$out/load-qwen.json" 2>&1
$bin synth --like llama-3-8b-q4_k_m /tmp/llama.gguf && $bin load /tmp/llama.gguf --compare --json > "$out/load-llama.json" 2>&1
tail -n 3 "$out/gpu-tests.txt"; grep -h "tensors bit-identical\|differ" "$out/verify.txt"; cat "$out/load-qwen.json" | head -20
