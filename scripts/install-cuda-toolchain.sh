#!/usr/bin/env bash
# Installs the CUDA compiler into .toolchain/ (git-ignored) from PyPI, with the exact
# pins that match the GPU machines' driver (CUDA 13.0). build.rs finds it there;
# the next `cargo build` embeds the kernels. No GPU is needed to compile them.
#
# nvidia-nvvm must be pinned as well: an unpinned one emits PTX this ptxas rejects.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check --upgrade --target .toolchain \
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-nvvm==13.0.88 nvidia-cuda-cccl==13.0.85
nvcc=.toolchain/nvidia/cu13/bin/nvcc
"$nvcc" --version | tail -n 2
# build.rs watches this file, so kernels appear on the next build; and build.rs
# itself, which it watches before the stamp exists.
date > .toolchain/stamp
touch build.rs
echo "installed $nvcc"
