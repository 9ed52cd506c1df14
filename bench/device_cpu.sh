#!/usr/bin/env bash
# CPU checks on a lent machine whose CPU has AVX-512 (and AVX512_BF16), which the development
# machines lack: runs the kernel parity tests on every SIMD target there, then times prefill and
# decode. Binaries are built on a development machine and carried in .devcarry/ (see
# docs/PERFORMANCE.md for the exact command).
set -u
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=$PWD/.devcarry/lib
out=${OUT:-/tmp}
grep -m1 'model name' /proc/cpuinfo
grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -E 'avx512(f|bw|dq|vl|_bf16)$|amx' | tr '\n' ' '; echo
nproc
.devcarry/qkv_kernels_test --gtest_brief=1 2>&1 | tee "$out/kernels_test.log" | tail -5
# The AVX512_BF16 dot-product path is used by default only on AMD; test it here too.
QKV_BF16_DOT=1 .devcarry/qkv_kernels_test --gtest_brief=1 --gtest_filter='*Bf16*' 2>&1 | tail -2
if [ -x .devcarry/qkv ]; then
  for args in "--n-q 2048 --heads 12 --head-dim 64" "--n-q 2048 --heads 12 --head-dim 64 --causal" \
              "--n-q 2048 --heads 12 --head-dim 64 --precision bf16" \
              "--n-q 2048 --heads 32 --kv-heads 8 --head-dim 128 --causal" \
              "--n-q 1 --n-kv 32768 --heads 32 --kv-heads 8 --head-dim 128 --dtype f16"; do
    for t in 1 2; do
      .devcarry/qkv bench attention $args --threads $t --no-reference 2>/dev/null | tee -a "$out/bench.log" | grep -E '^(machine|qkv)'
    done
  done
fi
