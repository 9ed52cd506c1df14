#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine: installs the packages, builds the release preset and
# runs the main job: the attention benchmark on the default shape (prefill, 2048 tokens, 12 heads,
# head_dim 64) and a decode shape, each against this machine's measured limits.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target qkv
./build/release/apps/qkv/qkv bench attention --causal
./build/release/apps/qkv/qkv bench attention --n-q 1 --n-kv 32768 --heads 32 --kv-heads 8 \
  --head-dim 128 --dtype f16 --no-reference
