#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine: installs the packages, builds the release preset and
# runs the main job: `qkv explain` on the built-in model (qkv-stories, trained by `qkv train` on
# the built-in story corpus; docs/TRAINING.md) with the classic Winograd sentence. It writes the
# interactive report to report.html and prints the terminal heatmap of layer 2, head 2, in which
# the "It" after the sentence attends to its antecedent: "animal" when the animal was too tired,
# "street" when the street was too wide (the model then writes what that noun does).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target qkv
qkv=./build/release/apps/qkv/qkv
"$qkv" explain "The animal didn't cross the street because it was too tired. It" -n 3 \
  --token It --map 2:2 --html report.html
echo
echo "The same head when the street is the problem:"
"$qkv" explain "The animal didn't cross the street because it was too wide. It" -n 3 \
  --token It --map 2:2 | tail -n 6
echo
echo "Open report.html for every layer and head (head view, model view, heatmaps)."
