#!/usr/bin/env bash
# Runs on the lent GPU machine, from the carried folder (scripts/gpu-prepare.sh
# builds it here and copies this script into it):
#
#     run(carry=[".carry"], command="bash .carry/gpu-run.sh", timeout_s=560)
#
# One command that cannot waste the lease: every step runs under its own
# `timeout`, the caps add up to under 8 minutes (and a run budget stops the
# rest if the clock says otherwise), each step's output lands under $OUT as it
# goes, the smoke test comes first and says loudly if the GPU path is broken,
# and the script exits 0 (so that what it wrote comes back) unless the carry
# itself is broken.
#
# The device tool returns at most 8 files from $OUT, so this writes exactly:
#   steps.tsv       step, exit code ("skip" if not run), seconds, output file, note
#   log.txt         every text step's stdout+stderr, between ===== banners; the summary last
#   devices.json    gguf-dequant devices --json
#   bench-f32.json, bench-f16.json, bench-bf16.json   bench --device cuda --json --runs 5
#                   (f32 and f16 with --peers, by the carried gguf-dequant-peers.xz where it
#                   starts: candle-core's CUDA decoders beside ours, "peers" in the JSON)
#   load-qwen.json, load-llama.json                   load FILE --compare --json
# scripts/gpu-report.py turns that folder into bench/results/gpu-<date>-<card>.json.
#
# Environment: OUT (default /tmp/gdq-out), GDQ_RUN_BUDGET (seconds, default 450),
# GDQ_SYNTH_DIR (where the synthetic models go, default /tmp/gdq-synth; never $OUT),
# GDQ_PEERS_DIR (where the peers binary is unpacked, default /tmp/gdq-peers-bin).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/gdq-out}
mkdir -p "$out" || { echo "gpu-run: cannot create $out"; exit 2; }
out=$(cd "$out" && pwd)
cd "$here"
bin=$here/gguf-dequant
tests=$here/gpu-tests
fixture=$here/tests/fixtures/real-weights.gguf
log=$out/log.txt
steps=$out/steps.tsv
budget=${GDQ_RUN_BUDGET:-450}
synth_dir=${GDQ_SYNTH_DIR:-/tmp/gdq-synth}
start=$SECONDS

say() { echo "$*"; echo "$*" >> "$log"; }
banner() {
    say "################################################################"
    say "$*"
    say "################################################################"
}

printf 'step\texit\tseconds\toutput\tnote\n' > "$steps"
: > "$log"

# The carry: without these nothing can tell anything; fail (the only non-zero exit).
for f in "$bin" "$tests" "$fixture" "$here/tests/fixtures/real-weights.expected.gguf" "$here/tests/fixtures/manifest.json"; do
    if [ ! -f "$f" ]; then
        banner "CARRY BROKEN: $f is missing: run scripts/gpu-prepare.sh and carry [\".carry\"]"
        printf 'carry\t2\t0\tlog.txt\tmissing %s\n' "$f" >> "$steps"
        exit 2
    fi
done
chmod +x "$bin" "$tests" 2>/dev/null

say "gpu-run: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), run budget ${budget}s, output in $out"
[ -f "$here/build-info.tsv" ] && sed 's/^/build: /' "$here/build-info.tsv" >> "$log"

# The GPU test binary reads its fixtures from GDQ_FIXTURES (set below): the
# carried ones, not the checkout it was built in.

# step NAME CAP OUTPUT CMD...: runs CMD under `timeout` (CAP seconds, cut to what is
# left of the run budget). OUTPUT "log" appends stdout+stderr to log.txt; a file
# name puts stdout there (stderr to log.txt). Records the step in steps.tsv.
# Returns the command's exit code (124: timed out; 125: not run, budget spent).
last_rc=0
step() {
    local name=$1 cap=$2 dest=$3
    shift 3
    local left=$((budget - (SECONDS - start)))
    local file=log.txt
    [ "$dest" = log ] || file=$dest
    if [ "$left" -lt 5 ]; then
        skip "$name" "$dest" "the run budget (${budget}s) is spent"
        last_rc=125
        return 125
    fi
    [ "$cap" -gt "$left" ] && cap=$left
    echo "===== [$name] $* (timeout ${cap}s) =====" >> "$log"
    echo "gpu-run: [$name] ... (timeout ${cap}s)"
    local t0 rc note=""
    t0=$(date +%s.%N)
    if [ "$dest" = log ]; then
        timeout -k 5 "$cap" "$@" >> "$log" 2>&1
    else
        timeout -k 5 "$cap" "$@" > "$out/$dest" 2>> "$log"
    fi
    rc=$?
    local secs
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        note="TIMED OUT at ${cap}s"
        echo "!!!!! [$name] TIMED OUT after ${cap}s !!!!!" >> "$log"
    fi
    echo "----- [$name] exit $rc, ${secs}s -----" >> "$log"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$rc" "$secs" "$file" "$note" >> "$steps"
    echo "gpu-run: [$name] exit $rc in ${secs}s${note:+ ($note)}"
    last_rc=$rc
    return "$rc"
}

# skip NAME OUTPUT WHY: records a step that is not run.
skip() {
    local file=$2
    [ "$file" = log ] && file=log.txt
    echo "===== [$1] SKIPPED: $3 =====" >> "$log"
    echo "gpu-run: [$1] skipped: $3"
    printf '%s\tskip\t0\t%s\t%s\n' "$1" "$file" "$3" >> "$steps"
}

# 1. Device info.
# (The plain listing if the query is refused: the fields are a guess at this driver's.)
step nvidia-smi 10 log bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,pcie.link.gen.max,pcie.link.width.max --format=csv || nvidia-smi'
step devices 10 devices.json "$bin" devices --json
have_gpu=0
grep -q '"ordinal"' "$out/devices.json" 2>/dev/null && have_gpu=1
if [ "$have_gpu" = 1 ]; then
    say "gpu-run: gguf-dequant sees a GPU"
else
    say "gpu-run: no GPU: gguf-dequant devices --json lists none ($(grep -o '"error": *"[^"]*"' "$out/devices.json" 2>/dev/null || echo 'no output'))"
fi

# The cuda-peers binary (gpu-prepare.sh builds it where it can): candle's
# cudarc links the CUDA libraries, so it starts only where they are found:
# libcudart travels in lib/; cuBLAS, cuRAND and NVRTC come from this image (its
# CUDA toolkit, or the nvidia-* Python packages PyTorch brings).
peers_xz=$here/gguf-dequant-peers.xz
peers_bin=${GDQ_PEERS_DIR:-/tmp/gdq-peers-bin}/gguf-dequant-peers  # unpacked outside the carry and $OUT
peers_env=()
if [ ! -f "$peers_xz" ]; then
    say "gpu-run: no peers binary in the carry: bench steps run without --peers"
elif ! { mkdir -p "$(dirname "$peers_bin")" &&
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
        "$peers_xz" "$peers_bin"; } >> "$log" 2>&1; then
    banner "PEERS BINARY NOT UNPACKED: bench steps run without --peers"
else
    chmod +x "$peers_bin" 2>/dev/null
    peers_path=$here/lib
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 \
        $(python3 -c 'import glob, os, site
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    for d in sorted(glob.glob(os.path.join(sp, "nvidia", "cu13", "lib")) + glob.glob(os.path.join(sp, "nvidia", "*", "lib"))):
        print(d)' 2>/dev/null); do
        [ -d "$d" ] && peers_path=$peers_path:$d
    done
    peers_env=(env "LD_LIBRARY_PATH=$peers_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" CUDA_CACHE_MAXSIZE=4294967296)
    if "${peers_env[@]}" "$peers_bin" --version >> "$log" 2>&1; then
        say "gpu-run: the peers binary starts (LD_LIBRARY_PATH=$peers_path)"
    else
        banner "PEERS BINARY DOES NOT START: bench steps run without --peers"
        "${peers_env[@]}" ldd "$peers_bin" 2>&1 | grep -E 'not found|cuda|cublas|curand|nvrtc' >> "$log"
        peers_env=()
    fi
fi

# 2. Smoke: the fixture (a few MB, several types) through the GPU in f32,
# compared bit for bit with the CPU. If this fails, the GPU path is broken.
step smoke 20 log "$bin" verify "$fixture" --device cuda --dtype f32
smoke_rc=$last_rc
if [ "$smoke_rc" -eq 0 ]; then
    smoke="SMOKE PASSED: the fixture decodes bit-identically on the GPU (f32)"
    say "$smoke"
else
    smoke="SMOKE FAILED: the GPU path is broken (verify exit $smoke_rc)"
    [ "$have_gpu" = 1 ] || smoke="$smoke; devices --json lists no GPU"
    # The error: the smoke step's last lines.
    err=$(awk 'index($0, "===== [smoke]") == 1 {p = 1; next} /^----- \[smoke\] exit/ {exit} p' "$log" | tail -n 12)
    banner "$smoke"
    say "${err:-(no output)}"
fi

# 3. The GPU suite: with GDQ_REQUIRE_GPU=1 a missing GPU fails instead of skipping.
step gpu-tests 60 log env GDQ_REQUIRE_GPU=1 GDQ_FIXTURES="$here/tests/fixtures" "$tests" --test-threads 1

# 3b. candle interop: the GPU suite built with candle's CUDA device (the
# cuda-peers build), its candle test: our decoded tensors as candle's CUDA
# tensors in candle's own context and stream. Starts where the peers binary does.
candle_xz=$here/gpu-tests-candle.xz
candle_tests=${GDQ_PEERS_DIR:-/tmp/gdq-peers-bin}/gpu-tests-candle
if [ ! -f "$candle_xz" ]; then
    skip candle-cuda log "no candle test binary in the carry (gpu-prepare.sh could not build it)"
elif [ "${#peers_env[@]}" -eq 0 ]; then
    skip candle-cuda log "the peers binary did not start here: the candle test binary links the same libraries"
elif ! python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    "$candle_xz" "$candle_tests" >> "$log" 2>&1; then
    skip candle-cuda log "the candle test binary did not unpack"
else
    chmod +x "$candle_tests"
    step candle-cuda 60 log "${peers_env[@]}" GDQ_REQUIRE_GPU=1 GDQ_FIXTURES="$here/tests/fixtures" \
        "$candle_tests" candle --test-threads 1
fi

# 4. compute-sanitizer over one quick test (every type and output, random blocks).
sanitizer=$(command -v compute-sanitizer 2>/dev/null)
if [ -z "$sanitizer" ]; then
    for c in /usr/local/cuda*/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer /usr/local/cuda*/compute-sanitizer/compute-sanitizer; do
        [ -x "$c" ] && { sanitizer=$c; break; }
    done
fi
quick_test=every_type_and_output_matches_the_reference_on_random_blocks
if [ -z "$sanitizer" ]; then
    skip memcheck log "compute-sanitizer not found (PATH, /usr/local/cuda*/bin)"
    skip racecheck log "compute-sanitizer not found (PATH, /usr/local/cuda*/bin)"
else
    say "gpu-run: compute-sanitizer is $sanitizer"
    for tool in memcheck racecheck; do
        cap=40
        [ "$tool" = racecheck ] && cap=25
        step "$tool" "$cap" log env GDQ_REQUIRE_GPU=1 "$sanitizer" --tool "$tool" --error-exitcode 99 --print-limit 20 \
            "$tests" --exact "$quick_test" --test-threads 1
    done
fi

# 5. verify of the fixture in the three output types.
for d in f32 f16 bf16; do
    step "verify-$d" 10 log "$bin" verify "$fixture" --device cuda --dtype "$d"
done

# The performance model of the same binary's kernels (their PTX run by the
# interpreter): predicted ratios to the copy, beside which the bench steps
# below measure the real ones (gpu-report.py puts them side by side).
step model 30 log "$bin" model

# 6. Throughput of every type, once per output type (bench also times a
# device-to-device copy of the output's size in the same run: ratio_to_copy).
# f32 and f16 also time candle-core's CUDA decoders (--peers) where the peers
# binary starts: a longer cap, since the driver compiles candle's PTX in the
# first run (cached for the next, CUDA_CACHE_MAXSIZE); if that step fails, ours
# alone again, into the same file.
for d in f32 f16 bf16; do
    if [ "$smoke_rc" -eq 124 ]; then
        skip "bench-$d" "bench-$d.json" "the smoke test timed out: the GPU hangs"
        continue
    fi
    if [ "${#peers_env[@]}" -gt 0 ] && [ "$d" != bf16 ]; then
        step "bench-$d" 60 "bench-$d.json" "${peers_env[@]}" "$peers_bin" bench --device cuda --json --runs 5 --dtype "$d" --peers ||
            step "bench-$d-nopeers" 25 "bench-$d.json" "$bin" bench --device cuda --json --runs 5 --dtype "$d"
    else
        step "bench-$d" 25 "bench-$d.json" "$bin" bench --device cuda --json --runs 5 --dtype "$d"
    fi
done

# 7. Whole-model loads of two synthetic models (the long ones, last). Never in
# $OUT (the llama file is 4.9 GB); llama needs 8 GB free.
# The Python package on the GPU (the carried wheel, unpacked onto PYTHONPATH,
# with this machine's torch): torch.load_file(device="cuda") against the CPU
# load, and its time on MODEL against the bus (text, into log.txt).
python_cuda() { # MODEL
    local wheel py_dir=/tmp/gdq-py
    wheel=$(ls "$here"/wheels/gguf_dequant-*.whl 2>/dev/null | head -n 1)
    if [ -z "$wheel" ]; then
        skip python-cuda log "no Python wheel in the carry"
    elif ! python3 -c 'import torch' >> "$log" 2>&1; then
        skip python-cuda log "python3 here has no torch"
    elif ! { rm -rf "$py_dir" && python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$wheel" "$py_dir"; } >> "$log" 2>&1; then
        skip python-cuda log "the wheel did not unpack"
    else
        step python-cuda 90 log env PYTHONPATH="$py_dir" GDQ_REQUIRE_GPU=1 GDQ_FIXTURES="$here/tests/fixtures" \
            python3 "$here/test_cuda.py" "$1"
    fi
}

load_one() { # name preset synth-cap load-cap [world: also a tensor-parallel load of that many ranks on GPU 0]
    local name=$1 like=$2 file=$synth_dir/$1.gguf
    if step "synth-$name" "$3" log "$bin" synth --like "$like" "$file"; then
        step "load-$name" "$4" "load-$name.json" "$bin" load "$file" --compare --json
        if [ "$name" = qwen ]; then
            python_cuda "$file"
        fi
        if [ -n "${5:-}" ]; then
            local devs
            devs=$(python3 -c "print(','.join(['0'] * $5))")
            step "load-$name-world$5" "$4" log "$bin" load "$file" --world "$5" --devices "$devs"
        fi
    else
        skip "load-$name" "load-$name.json" "synth failed"
    fi
    rm -f "$file"
}
if [ "$have_gpu" != 1 ]; then
    for m in qwen llama; do
        skip "synth-$m" log "no GPU (devices --json lists none)"
        skip "load-$m" "load-$m.json" "no GPU (devices --json lists none)"
    done
elif [ "$smoke_rc" -eq 124 ]; then
    for m in qwen llama; do
        skip "load-$m" "load-$m.json" "the smoke test timed out: the GPU hangs"
    done
else
    mkdir -p "$synth_dir"
    load_one qwen qwen2.5-0.5b-q4_k_m 15 25 2
    free_kb=$(df -Pk "$synth_dir" | awk 'NR == 2 {print $4}')
    say "gpu-run: $((free_kb / 1048576)) GiB free in $synth_dir"
    if [ "${free_kb:-0}" -lt $((8 << 20)) ]; then
        skip synth-llama log "under 8 GiB free in $synth_dir"
        skip load-llama load-llama.json "under 8 GiB free in $synth_dir"
    else
        load_one llama llama-3-8b-q4_k_m 60 60
    fi
    rmdir "$synth_dir" 2>/dev/null
fi

# Summary: printed last (the device tool's reply carries the end of the output).
# section NAME REGEX: the first line matching REGEX in step NAME's part of log.txt.
section() {
    awk -v s="===== [$1]" -v re="$2" 'index($0, s) == 1 {p = 1; if ($0 ~ re) {print; exit}; next}
        p && /^===== \[/ {exit} p && $0 ~ re {print; exit}' "$log" | sed -E 's/^=+ *//; s/ *=+$//' 
}
summary=$(mktemp)
{
    echo
    echo "==================== gpu-run summary ($((SECONDS - start))s) ===================="
    column -t -s $'\t' "$steps" 2>/dev/null || cat "$steps"
    echo
    echo "$smoke"
    echo "gpu-tests: $(section gpu-tests '^test result:|TIMED OUT|SKIPPED')"
    awk 'index($0, "===== [gpu-tests]") == 1 {p = 1; next} p && /^===== \[/ {exit}
        p && /^test .* FAILED$/ && n < 6 {print "    " $0; n++}
        p && /panicked at/ && !m {print "    " $0; getline; print "        " $0; m = 1}' "$log"
    for tool in memcheck racecheck; do
        echo "$tool: $(section "$tool" 'ERROR SUMMARY|RACECHECK SUMMARY|TIMED OUT|SKIPPED|^error')"
    done
    for d in f32 f16 bf16; do
        line=$(section "verify-$d" 'tensors bit-identical|tensors differ|TIMED OUT|^error')
        echo "verify $d: ${line:-no verdict (see log.txt)}"
    done
    for d in f32 f16; do
        n=$(grep -c '"peer": "candle-core-cuda"' "$out/bench-$d.json" 2>/dev/null)
        echo "peers $d: ${n:-0} candle-core-cuda rows in bench-$d.json$([ "${#peers_env[@]}" -gt 0 ] || echo ' (no peers binary running)')"
    done
    for m in qwen llama; do
        if [ -s "$out/load-$m.json" ]; then
            echo "load-$m:"
            head -n 14 "$out/load-$m.json" | sed 's/^/    /'
        else
            echo "load-$m: no result ($(awk -F'\t' -v s="load-$m" '$1 == s {print "exit " $2 (($5 != "") ? ": " $5 : "")}' "$steps"))"
        fi
    done
    echo "files in $out: $(cd "$out" && ls | tr '\n' ' ')"
} > "$summary" 2>&1
tee -a "$log" < "$summary"
rm -f "$summary"
exit 0
