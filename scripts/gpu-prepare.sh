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
# The test binary's path comes from cargo's JSON messages (stdout); build
# errors still reach stderr.
test_bin=$(cargo test --release --test gpu --no-run --message-format=json |
    python3 -c 'import json,sys
for l in sys.stdin:
    try:
        m = json.loads(l)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu":
        print(m["executable"])')
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

# What the tests binary was built against: it reads its fixtures from
# CARGO_MANIFEST_DIR/tests/fixtures (an absolute path of this checkout), so
# gpu-run.sh links that path to the carried fixtures where it is missing.
{
    echo "commit	$(git rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "dirty_files	$(git status --porcelain 2>/dev/null | grep -vc '^??' || true)"
    echo "built	$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cuda_archs	$GDQ_CUDA_ARCHS"
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
