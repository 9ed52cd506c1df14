#!/usr/bin/env bash
# CPU checks on a lent machine whose CPU has AVX-512 (and AVX512_BF16), which the development
# machines lack: runs the kernel parity tests on every SIMD target there, then times prefill and
# decode on the avx512 target, the avx2 target and the bf16 mode (AMX on and off), alternating the
# variants round by round (FULL=1: the issue's shapes on the default paths instead). Binaries are
# built on a development machine and carried in .devcarry/, with the shared libraries they need
# (which that machine's image lacks) in .devcarry/libs.tar.xz:
#   mkdir -p .devcarry && cp build/release/apps/qkv/qkv build/release/tests/kernels/{qkv_kernels_test,qkv_linear_test,qkv_attention_backward_test} .devcarry/
#   tar -C / -chJf .devcarry/libs.tar.xz $(ldd .devcarry/qkv .devcarry/qkv_*test | awk '/=> \// {print $3}' | grep -v -E 'lib(c|m|stdc\+\+|gcc_s)\.so' | sort -u | sed 's|^/||')
# then run `bash bench/device_cpu.sh` there with .devcarry carried.
set -u
cd "$(dirname "$0")/.."
out=${OUT:-/tmp}
lib=/tmp/qkv-devlibs
mkdir -p "$lib"
tar -C "$lib" -xJf .devcarry/libs.tar.xz
export LD_LIBRARY_PATH=$(find "$lib" -name '*.so*' -printf '%h\n' | sort -u | paste -sd:)
grep -m1 'model name' /proc/cpuinfo
grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -E 'avx512(f|bw|dq|vl|_bf16)$|amx' | tr '\n' ' '; echo
nproc
for t in qkv_kernels_test qkv_linear_test qkv_attention_backward_test; do
  .devcarry/$t --gtest_brief=1 2>&1 | tee "$out/$t.log" | tail -2
done
# The bf16 mode's three paths: AMX tiles (the default where the CPU has AMX-BF16), AVX512_BF16
# dot products (the default on AMD) and the rounding path.
for v in "QKV_BF16_AMX=0 QKV_BF16_DOT=1" "QKV_BF16_AMX=0 QKV_BF16_DOT=0"; do
  echo "$v: $(env $v .devcarry/qkv_kernels_test --gtest_brief=1 --gtest_filter='*Bf16*:*SharedTiles*' 2>&1 | tail -1)"
done
bench() {  # label, env..., -- args (BIN=name in the env list picks another binary of .devcarry;
           # PEER=1 also times the reference and the materialised OpenBLAS peer)
  local label=$1; shift
  local envs=() bin=qkv noref=--no-reference
  while [ "$1" != "--" ]; do
    case $1 in BIN=*) bin=${1#BIN=} ;; PEER=1) noref= ;; *) envs+=("$1") ;; esac
    shift
  done
  shift
  env "${envs[@]}" .devcarry/$bin bench attention "$@" --threads 2 $noref --json 2>/dev/null |
    python3 -c "import json,sys; r=json.load(sys.stdin); print('$label', *('%s=%.4g' % (k, r[k]) for k in ('ms','gflops','peak_gflops','gbps','peak_gbps','materialised_gflops','speedup_vs_materialised') if r.get(k)))" |
    tee -a "$out/bench.log"
}
if [ -n "${FULL:-}" ]; then
  # FULL=1: the issue's nine prefill shapes (fp32 and the default bf16 path) and three decode
  # shapes, on the selected target, two rounds; fp32 and decode with the materialised peer.
  for round in 1 2; do
    echo "round $round" | tee -a "$out/bench.log"
    for shape in "--n-q 2048 --heads 12 --head-dim 64" "--n-q 2048 --heads 12 --head-dim 64 --causal" \
                 "--n-q 8192 --heads 12 --head-dim 64 --reps 2" \
                 "--n-q 8192 --heads 12 --head-dim 64 --causal --reps 2" \
                 "--n-q 2048 --heads 8 --head-dim 128" "--n-q 2048 --heads 8 --head-dim 128 --causal" \
                 "--n-q 8192 --heads 8 --head-dim 128 --reps 2" \
                 "--n-q 8192 --heads 8 --head-dim 128 --causal --reps 2" \
                 "--n-q 2048 --heads 32 --kv-heads 8 --head-dim 128 --causal"; do
      bench "f32  $shape" PEER=1 -- $shape
      bench "bf16 $shape" -- $shape --precision bf16
    done
    for shape in "--n-q 1 --n-kv 32768 --heads 12 --head-dim 64 --dtype f16" \
                 "--n-q 1 --n-kv 32768 --heads 32 --kv-heads 8 --head-dim 128 --dtype f16" \
                 "--n-q 1 --n-kv 32768 --heads 8 --head-dim 128 --dtype bf16"; do
      bench "$shape" PEER=1 -- $shape
    done
  done
  exit 0
fi
for round in 1 2; do
  echo "round $round" | tee -a "$out/bench.log"
  for shape in "--n-q 2048 --heads 12 --head-dim 64" "--n-q 2048 --heads 12 --head-dim 64 --causal" \
               "--n-q 2048 --heads 8 --head-dim 128 --causal" \
               "--n-q 2048 --heads 32 --kv-heads 8 --head-dim 128 --causal" \
               "--n-q 8192 --heads 8 --head-dim 128 --causal"; do
    bench "f32            $shape" QKV_CPU_TARGET=avx512 -- $shape
    bench "bf16 (default) $shape" QKV_CPU_TARGET=avx512 -- $shape --precision bf16
    bench "bf16 AMX off   $shape" QKV_BF16_AMX=0 -- $shape --precision bf16
    # A base build carried as .devcarry/qkv_base, for A/B of a change:
    [ -x .devcarry/qkv_base ] && bench "bf16 (base)    $shape" BIN=qkv_base -- $shape --precision bf16
  done
  [ -n "${SKIP_DECODE:-}" ] && continue
  for shape in "--n-q 1 --n-kv 32768 --heads 12 --head-dim 64 --dtype f16" \
               "--n-q 1 --n-kv 32768 --heads 32 --kv-heads 8 --head-dim 128 --dtype f16"; do
    bench "avx512 $shape" QKV_CPU_TARGET=avx512 -- $shape
    bench "avx2   $shape" QKV_CPU_TARGET=avx2 -- $shape
  done
done
