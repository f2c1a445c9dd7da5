#!/usr/bin/env bash
# The crate as crates.io and docs.rs get it: packs it (`cargo package`: what
# Cargo.toml's `include` names, the library, the CLI, cuda/ and build.rs; no
# tests/, fixtures, benches, examples, scripts or docs) and, from the unpacked
# .crate, away from this checkout, so that nothing left out can be used:
#
# 1. documents it as docs.rs does: its [package.metadata.docs.rs] features,
#    `--cfg docsrs` (each feature-gated module marked with its feature, which
#    needs nightly rustdoc's `doc_cfg`: RUSTC_BOOTSTRAP, given to rustdoc
#    alone), no CUDA toolkit, warnings denied;
# 2. builds it and runs its unit tests without nvcc (a user without CUDA: the
#    kernels run on the emulated grid, none embedded);
# 3. and with nvcc (scripts/install-cuda-toolchain.sh, for one architecture:
#    the kernels compiled and embedded, their PTX run by the interpreter in
#    a unit test).
#
#   scripts/package-check.sh [--allow-dirty]   # (uncommitted changes: see cargo package)
#
# The dependencies are those of the checkout's target directory, where its
# builds (`cargo test`, `cargo clippy`) made most of them; the packed crate's
# own outputs are removed afterwards, with the unpacked crate. About a minute
# after `cargo test` (CI runs it last), and a few more for the dependencies'
# documentation metadata the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
export CARGO_TARGET_DIR=$target
start=$SECONDS

echo "== cargo package (files as packed)"
rm -f "$target"/package/gguf-dequant-*.crate
cargo package -p gguf-dequant --locked --no-verify "$@"
crate=$(ls "$target"/package/gguf-dequant-*.crate)
files=$(tar tzf "$crate" | grep -cv '/$')
bytes=$(tar xzOf "$crate" | wc -c)
echo "$(basename "$crate"): $files files, $((bytes / 1024)) KiB unpacked, $(($(stat -c %s "$crate") / 1024)) KiB packed"
for f in tests/ benches/ examples/ scripts/ bench/ docs/ python/ fakecuda/ fuzz/; do
    if tar tzf "$crate" | grep -q "^gguf-dequant-[^/]*/$f"; then
        echo "the package holds $f, which Cargo.toml's include leaves out" >&2
        exit 1
    fi
done

work=$(mktemp -d)
tar xzmf "$crate" -C "$work" # -m: files dated now, newer than any build of them
pkg=$(basename "$crate" .crate)
# A workspace of its own, around it: so cargo neither looks for one in this
# checkout nor takes it for the checkout's package (whose build outputs would
# then be its own), and resolves features as the crate's edition does, with
# the crate's profiles (a workspace's root has them: the dependencies are then
# those the checkout's build made).
cp "$work/$pkg/Cargo.lock" "$work/"
{
    printf '[workspace]\nmembers = ["%s"]\nresolver = "2"\n\n' "$pkg"
    python3 -c 'import sys
keep = False
for line in open(sys.argv[1]):
    if line.startswith("["):
        keep = line.startswith("[profile.")
    if keep:
        print(line, end="")' "$work/$pkg/Cargo.toml"
} >"$work/Cargo.toml"

# Every cargo run below goes through `record`: cargo's JSON messages about
# the packed crate are kept (its build outputs, to be removed at the end, and
# what the checks below read), everything else is printed.
cat >"$work/record.py" <<'PY'
import json, sys
prefix = "path+file://" + sys.argv[1] + "#"
with open(sys.argv[2], "a") as log:
    for line in sys.stdin:
        try:
            m = json.loads(line)
        except ValueError:
            sys.stdout.write(line)
            sys.stdout.flush()
            continue
        if isinstance(m, dict) and m.get("package_id", "").startswith(prefix):
            log.write(line)
PY
record() { python3 "$work/record.py" "$work/$pkg" "$work/messages.jsonl"; }
# The packed crate's outputs in the target directory (the folders and files
# named by their hash), removed at the end; the dependencies stay.
cleanup() {
    python3 - "$work/messages.jsonl" "$target" <<'PY' || true
import glob, json, os, re, shutil, sys
hashes = set()
for line in open(sys.argv[1]) if os.path.exists(sys.argv[1]) else []:
    m = json.loads(line)
    for p in m.get("filenames", []) + [m.get("executable") or "", m.get("out_dir", "")]:
        hashes.update(re.findall(r"-([0-9a-f]{16})(?:[./]|$)", p))
for h in hashes:
    for p in glob.glob(f"{sys.argv[2]}/*/*/*-{h}*") + glob.glob(f"{sys.argv[2]}/*/.fingerprint/*-{h}"):
        shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
PY
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
json=--message-format=json-render-diagnostics
tests=(cargo test --locked -p gguf-dequant --lib --features fault-injection,candle "$json")

echo "== docs.rs: cargo doc, its features, --cfg docsrs, no nvcc, warnings denied"
features=$(python3 -c 'import sys, tomllib; print(",".join(tomllib.load(open(sys.argv[1], "rb"))["package"]["metadata"]["docs"]["rs"]["features"]))' "$pkg/Cargo.toml")
printf '#!/bin/sh\nRUSTC_BOOTSTRAP=1 exec rustdoc "$@"\n' >"$work/rustdoc"
chmod +x "$work/rustdoc"
GDQ_NO_NVCC=1 RUSTDOC="$work/rustdoc" RUSTDOCFLAGS="--cfg docsrs -D warnings" \
    cargo doc --locked -p gguf-dequant --no-deps --features "$features" "$json" | record
echo "(docs: done at $((SECONDS - start)) s)"

# with the features `cargo test` builds the crate's own tests with (by its
# dev-dependency on itself, which the package drops), so that the
# dependencies are those already built for them
echo "== unit tests of the packed crate, without nvcc"
GDQ_NO_NVCC=1 "${tests[@]}" | record
echo "(no nvcc: done at $((SECONDS - start)) s)"

nvcc=$root/.toolchain/nvidia/cu13/bin/nvcc
if [ -x "$nvcc" ]; then
    echo "== unit tests of the packed crate, with nvcc (sm_90 only)"
    # (GDQ_REQUIRE_PTX: the unit test that runs the embedded PTX must run)
    export NVCC=$nvcc GDQ_CUDA_ARCHS=90 GDQ_REQUIRE_PTX=1
    "${tests[@]}" | record
    # build.rs's output folder must hold the kernel image nvcc made
    out=$(python3 -c 'import json, sys
for m in map(json.loads, open(sys.argv[1])):
    if m["reason"] == "build-script-executed":
        out = m["out_dir"]
print(out)' "$work/messages.jsonl")
    [ -s "$out/kernels.fatbin" ] || { echo "build.rs did not build the kernels with $nvcc" >&2; exit 1; }
    # and a second build compiles nothing (a build script rerun at every
    # build, as a missing file it watches makes it, would recompile the crate)
    "${tests[@]}" --no-run | python3 -c 'import json, sys
ours = [json.loads(l) for l in sys.stdin if sys.argv[1] in l]
fresh = [m["fresh"] for m in ours if m["reason"] == "compiler-artifact"]
sys.exit(0 if fresh and all(fresh) else "a second build of the packed crate compiled it again")' "file://$work/$pkg#"
    echo "(nvcc: done at $((SECONDS - start)) s)"
else
    echo "(no $nvcc: the build with nvcc is not checked; scripts/install-cuda-toolchain.sh installs it)"
fi
