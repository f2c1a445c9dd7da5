#!/usr/bin/env bash
# Builds, HERE (the GPU machine may have no Rust toolchain), everything the lent
# GPU machine runs, into .carry/ (git-ignored): the release binary, the GPU test
# binary, the fixtures and gpu-run.sh. Then prints the exact device-tool call.
#
#   scripts/gpu-prepare.sh                     # kernels for sm_90 (the lent H200)
#   GDQ_CUDA_ARCHS=80,90 scripts/gpu-prepare.sh  # other architectures
#
# Fails loudly if the build embeds no kernels (no nvcc) or if what travels is
# over the device tool's 64 MiB. See docs/GPU.md, "Measuring on a lent GPU".
#
# Then it builds the same binary with candle-core's CUDA decoders timed beside
# ours (feature cuda-peers) as .carry/gguf-dequant-peers.xz (46 MB unpacked,
# mostly candle's kernels; 6 MB packed), which gpu-run.sh unpacks and whose
# f32 and f16 bench steps run with --peers; and the GPU suite with the same
# features (.carry/gpu-tests-candle.xz), whose candle test puts our decoded
# tensors on candle's CUDA device. candle's cudarc LINKS the CUDA
# libraries, so that binary is linked here against stubs of them (made in
# .toolchain/link-stubs from cudarc's own declarations) and finds the real ones
# on the GPU machine (libcudart travels in .carry/lib). If it cannot be built,
# the carry goes without it, loudly (GDQ_NO_PEERS=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export GDQ_CUDA_ARCHS=${GDQ_CUDA_ARCHS:-90}
# A target folder of its own: switching GDQ_CUDA_ARCHS in the shared target/
# would rebuild every kernel for everyone's next build, and another build
# there could replace the binary between the build and the copy.
export CARGO_TARGET_DIR=${GDQ_CARRY_TARGET:-target/gpu-carry}
limit=$((64 << 20))

die() {
    echo "==================================================================" >&2
    echo "gpu-prepare: FAILED: $*" >&2
    echo "==================================================================" >&2
    exit 1
}

[ -x .toolchain/nvidia/cu13/bin/nvcc ] || scripts/install-cuda-toolchain.sh

echo "gpu-prepare: building for sm_${GDQ_CUDA_ARCHS} (override with GDQ_CUDA_ARCHS)"
cargo build --release --bin gguf-dequant
# gpu_test_binary [CARGO ARGS]: builds the GPU test binary and prints its
# path, from cargo's JSON messages (stdout); build errors still reach stderr.
gpu_test_binary() {
    cargo test --release --test gpu --no-run --message-format=json "$@" |
        python3 -c 'import json,sys
for l in sys.stdin:
    try:
        m = json.loads(l)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu":
        print(m["executable"])'
}
test_bin=$(gpu_test_binary)
[ -n "$test_bin" ] && [ -x "$test_bin" ] || die "no GPU test binary found (cargo test --test gpu --no-run)"

rm -rf .carry
mkdir -p .carry/tests/fixtures
cp "$CARGO_TARGET_DIR/release/gguf-dequant" .carry/gguf-dequant
cp "$test_bin" .carry/gpu-tests
# Debug info off, symbols kept (panics and compute-sanitizer backtraces stay readable).
strip --strip-debug .carry/gguf-dequant .carry/gpu-tests
cp tests/fixtures/real-weights.gguf tests/fixtures/real-weights.expected.gguf \
    tests/fixtures/manifest.json .carry/tests/fixtures/
cp scripts/gpu-run.sh .carry/gpu-run.sh

# The Python package's wheel (abi3, kernels for GDQ_CUDA_ARCHS) and its CUDA
# checks, for torch on the GPU machine: built with the maturin of .venv
# (scripts/test.sh makes it); without it the carry goes without, loudly.
if [ -x .venv/bin/maturin ] && .venv/bin/maturin build --release --quiet -m python/Cargo.toml --out .carry/wheels; then
    cp python/tests/test_cuda.py python/tests/gguf_writer.py .carry/
    echo "gpu-prepare: Python wheel $(ls .carry/wheels)"
else
    rm -rf .carry/wheels
    echo "gpu-prepare: WARNING: no Python wheel in the carry (run scripts/test.sh --python once to make .venv)" >&2
fi

# The kernels must be in the binary, for the architecture the machine has.
devjson=$(.carry/gguf-dequant devices --json)
echo "$devjson" | python3 -c '
import json, sys
d = json.load(sys.stdin)
want = sys.argv[1].split(",")
if not d.get("kernels_embedded"):
    sys.exit("the release binary embeds no kernels (was nvcc found?)")
if "90" not in want:
    print("gpu-prepare: WARNING: GDQ_CUDA_ARCHS=%s has no sm_90: the lent H200 is sm_90" % sys.argv[1])
print("gpu-prepare: kernels embedded for", ", ".join(d.get("architectures", [])))
' "$GDQ_CUDA_ARCHS" || die "the binary is not usable on the GPU machine"

# The cuda-peers binary: candle-core's CUDA decoders beside ours.
stubs=$root/.toolchain/link-stubs
# Link stubs of the libraries candle's cudarc links (its `dynamic-linking`):
# every function cudarc declares for each, with the real library's soname.
# They are for linking only (and for a no-GPU check here: the driver stub
# answers CUDA_ERROR_NO_DEVICE); never put them on a GPU machine's path.
make_link_stubs() {
    local cudarc_dir
    cudarc_dir=$(cargo metadata --format-version 1 --features cuda-peers |
        python3 -c 'import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "cudarc":
        print(os.path.dirname(p["manifest_path"]))
        break') || return 1
    [ -n "$cudarc_dir" ] || return 1
    rm -rf "$stubs" && mkdir -p "$stubs/lib" || return 1
    python3 - "$cudarc_dir/src" "$stubs/lib" <<'PY' || return 1
import os, re, subprocess, sys
src, out = sys.argv[1:]
# module, library, soname, the status its stubs return (a valid value of its enum)
libs = [("driver", "cuda", "libcuda.so.1", 100),  # CUDA_ERROR_NO_DEVICE
        ("nvrtc", "nvrtc", "libnvrtc.so.13", 1),
        ("cublas", "cublas", "libcublas.so.13", 1),
        ("cublaslt", "cublasLt", "libcublasLt.so.13", 1),
        ("curand", "curand", "libcurand.so.10", 101)]
strings = {"cuGetErrorString", "cuGetErrorName"}
returns_string = re.compile(r"(GetErrorString|GetStatusString|GetStatusName)$")
for mod, lib, soname, status in libs:
    text = open(os.path.join(src, mod, "sys", "mod.rs")).read()
    names = sorted(set(re.findall(r'extern "C" \{\s*(?:#\[[^\]]*\]\s*)*(?:pub )?fn (\w+)\s*\(', text)))
    if not names:
        sys.exit("no functions declared in %s/sys/mod.rs" % mod)
    c = ['/* gguf-dequant link stub of %s: not a CUDA library */' % soname,
         'static const char msg[] = "stub %s: no CUDA here";' % soname]
    for n in names:
        if n in strings:
            c.append('int %s(int e, const char **s) { (void)e; if (s) *s = msg; return 0; }' % n)
        elif mod != "driver" and returns_string.search(n):
            c.append('const char *%s(int e) { (void)e; return msg; }' % n)
        else:
            c.append('int %s(void) { return %d; }' % (n, status))
    cfile = os.path.join(out, lib + ".c")
    open(cfile, "w").write("\n".join(c) + "\n")
    so = os.path.join(out, "lib%s.so" % lib)
    subprocess.run(["cc", "-shared", "-fPIC", "-Wl,-soname," + soname, "-o", so, cfile], check=True)
    os.symlink("lib%s.so" % lib, os.path.join(out, soname))
    print("gpu-prepare: link stub %s: %d functions" % (soname, len(names)))
PY
    # candle-kernels links libcudart (its MoE kernels): the real one, ours.
    ln -sf "$root/.toolchain/nvidia/cu13/lib/libcudart.so.13" "$stubs/lib/libcudart.so"
}

# build_peers: the cuda-peers binary into .carry/gguf-dequant-peers.xz. nvcc
# compiles candle-kernels (PTX, and the MoE/MMQ library) for CUDA_COMPUTE_CAP;
# CUDA_ROOT points cudarc's link search at the stubs.
build_peers() {
    make_link_stubs || return 1
    NVCC=$root/.toolchain/nvidia/cu13/bin/nvcc \
        PATH=$root/.toolchain/nvidia/cu13/bin:$PATH \
        CUDA_ROOT=$stubs \
        CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} \
        cargo build --release --bin gguf-dequant --features cuda-peers || return 1
    # The GPU suite with candle's CUDA device too (the candle interop test).
    local candle_tests
    candle_tests=$(NVCC=$root/.toolchain/nvidia/cu13/bin/nvcc \
        PATH=$root/.toolchain/nvidia/cu13/bin:$PATH \
        CUDA_ROOT=$stubs \
        CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} \
        gpu_test_binary --features cuda-peers) || return 1
    [ -n "$candle_tests" ] && [ -x "$candle_tests" ] || return 1
    cp "$candle_tests" "$CARGO_TARGET_DIR/gpu-tests-candle" &&
        strip --strip-debug "$CARGO_TARGET_DIR/gpu-tests-candle" || return 1
    local bin=$CARGO_TARGET_DIR/gguf-dequant-peers
    cp "$CARGO_TARGET_DIR/release/gguf-dequant" "$bin" && strip --strip-debug "$bin" || return 1
    # Here there is no GPU: with the stubs it starts, and must refuse cleanly.
    local msg rc
    msg=$(LD_LIBRARY_PATH=$stubs/lib:$root/.toolchain/nvidia/cu13/lib "$bin" bench --device cuda --peers \
        --type q4_0 --elems 4096 --runs 1 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ] || [ "$rc" -gt 2 ] || echo "$msg" | grep -q panicked; then
        echo "gpu-prepare: the peers binary without a GPU: exit $rc: $msg" >&2
        return 1
    fi
    echo "gpu-prepare: the peers binary without a GPU refuses cleanly: $msg"
    # Packed for the carry limit; gpu-run.sh unpacks it.
    xz -T0 -9 -c "$bin" > .carry/gguf-dequant-peers.xz &&
        xz -T0 -9 -c "$CARGO_TARGET_DIR/gpu-tests-candle" > .carry/gpu-tests-candle.xz &&
        mkdir -p .carry/lib &&
        cp "$root/.toolchain/nvidia/cu13/lib/libcudart.so.13" .carry/lib/
}

if [ "${GDQ_NO_PEERS:-0}" = 1 ]; then
    peers="skipped (GDQ_NO_PEERS=1)"
elif (echo "gpu-prepare: building the cuda-peers binary (candle-core's CUDA decoders beside ours)"; build_peers); then
    peers="built: .carry/gguf-dequant-peers.xz ($(du -h .carry/gguf-dequant-peers.xz | cut -f1))"
else
    rm -rf .carry/gguf-dequant-peers.xz .carry/gpu-tests-candle.xz .carry/lib
    peers="NOT BUILT: the carry has no peers binary; gpu-run.sh benches without --peers"
    echo "==================================================================" >&2
    echo "gpu-prepare: WARNING: the cuda-peers binary did not build or check out (see above):" >&2
    echo "gpu-prepare: the GPU run will time our kernels alone, with no candle-core-cuda rows" >&2
    echo "==================================================================" >&2
fi
echo "gpu-prepare: peers binary $peers"

# What the tests binary was built against: it reads its fixtures from
# CARGO_MANIFEST_DIR/tests/fixtures (an absolute path of this checkout), so
# gpu-run.sh links that path to the carried fixtures where it is missing.
{
    echo "commit	$(git rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "dirty_files	$(git status --porcelain 2>/dev/null | grep -vc '^??' || true)"
    echo "built	$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cuda_archs	$GDQ_CUDA_ARCHS"
    echo "peers	$peers"
    echo "manifest_dir	$root"
    echo "rustc	$(rustc --version)"
} > .carry/build-info.tsv

# Sizes: .carry alone, and everything the device tool sends (tracked files,
# untracked files git does not ignore, and the carry), each under 64 MiB.
carry_bytes=$(du -sb .carry | cut -f1)
tree_bytes=$({ git ls-files -z; git ls-files -z -o --exclude-standard; } |
    du -cb --files0-from=- 2>/dev/null | tail -n 1 | cut -f1)
total=$((carry_bytes + tree_bytes))
mib() { python3 -c "print('%.1f MiB' % ($1 / 1048576))"; }
echo "gpu-prepare: .carry is $(mib "$carry_bytes"); the work tree $(mib "$tree_bytes"); together $(mib "$total") of 64 MiB"
ls -l .carry .carry/tests/fixtures
[ "$carry_bytes" -lt "$limit" ] || die ".carry is $(mib "$carry_bytes"): over the 64 MiB carry limit"
[ "$total" -lt "$limit" ] || die "work tree + .carry is $(mib "$total"): over the 64 MiB the device tool sends"

cat <<'EOF'

gpu-prepare: ready. The device-tool call to make (one call; about 8 minutes at most):
    run(carry=[".carry"], command="bash .carry/gpu-run.sh", timeout_s=560)
Then, here:  python3 scripts/gpu-report.py <files_at folder>   (see docs/GPU.md)
EOF
