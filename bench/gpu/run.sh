#!/usr/bin/env bash
# One command for a lent GPU machine (see /work/.library/device): builds the CUDA backend with
# its check/benchmark program (bench/gpu/CMakeLists.txt, standalone: nvcc, CMake, ninja only),
# checks it against the float64 CPU reference on fresh random inputs, and times it next to
# PyTorch's scaled_dot_product_attention (flash and cuDNN backends) on the same shapes.
#
#   bench/gpu/run.sh [n_random_cases]        logs go to $OUT (or build/gpu-logs)
#
# Env: QKV_CUDA_ARCHS (default 90a; "80-real;90a-real" for both), QKV_SKIP_BENCH=1.
set -uo pipefail
cd "$(dirname "$0")/../.."
# At most 8 files come back from a lent machine: the main results go to $out, the rest to $logs.
out=${OUT:-build/gpu-logs}
logs=build/gpu-logs-local
mkdir -p "$out" "$logs"
archs=${QKV_CUDA_ARCHS:-90a-real}
# nvcc from PATH; without one there, CMake's CUDA support looks for it (CUDACXX, CUDAToolkit_ROOT,
# CUDA_PATH).
nvcc=$(command -v nvcc || true)

{
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu \
    --format=csv || true
  if [ -n "$nvcc" ]; then "$nvcc" --version | tail -2; fi
} 2>&1 | tee "$out/device.txt"

# QKV_PREBUILT: a qkv_cuda_bench built elsewhere (saves device time); the device build then runs
# beside the check, and the benchmark uses whichever binary is fresh.
build() {
  local t0=$(date +%s)
  cmake -S bench/gpu -B build/gpubench-dev -G Ninja -DCMAKE_BUILD_TYPE=Release \
    ${nvcc:+-DCMAKE_CUDA_COMPILER="$nvcc"} -DCMAKE_CUDA_ARCHITECTURES="$archs" >"$logs/build.txt" 2>&1 &&
    cmake --build build/gpubench-dev -j"$(nproc)" >>"$logs/build.txt" 2>&1
  local rc=$?
  echo "build: rc=$rc in $(($(date +%s) - t0)) s"
  grep -E "spill|Used|serializ" "$logs/build.txt" | sort | uniq -c
  return $rc
}
bin=build/gpubench-dev/qkv_cuda_bench
build_pid=
# (exit 2: usage, 3: no device; either means the binary loads)
pre_rc=1
if [ -n "${QKV_PREBUILT:-}" ]; then
  "$QKV_PREBUILT" usage >/dev/null 2>&1
  pre_rc=$?
fi
if [ $pre_rc -eq 2 ] || [ $pre_rc -eq 3 ]; then
  echo "using prebuilt $QKV_PREBUILT; building here in the background"
  bin=$QKV_PREBUILT
  build >"$logs/build_status.txt" 2>&1 &
  build_pid=$!
else
  build || { grep -E "error|Error" "$logs/build.txt" | head -30; exit 1; }
fi

echo "== check"
"$bin" check "${1:-60}" 2>&1 | tee "$out/check.txt" | grep -v "^ok" | tail -25
check_rc=${PIPESTATUS[0]}
echo "check: rc=$check_rc"

# The unit tests' GPU cases, when a GoogleTest binary built elsewhere travels with the call.
if [ -n "${QKV_TEST_BIN:-}" ] && [ -x "$QKV_TEST_BIN" ]; then
  echo "== unit tests ($QKV_TEST_BIN)"
  "$QKV_TEST_BIN" 2>&1 | tee "$out/unit_tests.txt" | grep -E "PASSED|FAILED|SKIPPED|tests ran"
fi

if [ -n "$build_pid" ]; then
  wait $build_pid && bin=build/gpubench-dev/qkv_cuda_bench
  cat "$logs/build_status.txt"
  echo "bench binary: $bin"
fi
# Hopper matrix instructions in the binary (HGMMA = wgmma; HMMA = mma.sync).
if command -v cuobjdump >/dev/null; then
  cuobjdump --dump-sass "$bin" 2>/dev/null | grep -oE "HGMMA\.[A-Z0-9x.]+|HMMA\.[0-9A-Z.]+" |
    sort | uniq -c >"$out/sass_mma.txt"
  echo "sass: $(tr -s ' \n' ' ' <"$out/sass_mma.txt")"
fi
if [ "${QKV_NCU:-0}" = 1 ] && command -v ncu >/dev/null; then
  echo "== ncu (one launch per kernel; stall reasons in cycles per issued instruction)"
  ncu --clock-control none --section SpeedOfLight --section Occupancy \
    --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
    -k regex:flash_fwd "$bin" profile >"$out/ncu.txt" 2>&1
  awk '/flash_fwd/ {print} /Duration|Compute \(SM\) Throughput|Achieved Occupancy/ {print}
       /issue_stalled/ && $NF+0 > 0.15 {print}' "$out/ncu.txt" | head -60
fi
if [ "${QKV_SKIP_BENCH:-0}" != 1 ]; then
  echo "== bench"
  "$bin" bench "$logs/qkv_bench.json" 2>&1 | tee "$out/bench.txt"
  PYTHONUNBUFFERED=1 python3 bench/gpu/torch_sdpa.py "$logs/qkv_bench.json" "$out/combined.json" \
    2>&1 | tee "$out/torch.txt"
fi
exit $check_rc
