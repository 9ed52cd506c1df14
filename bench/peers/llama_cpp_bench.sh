#!/usr/bin/env bash
# llama.cpp as the peer benchmark: prefill (pp512) and decode (tg128) tokens/s of a GGUF on this
# machine's CPU at 1 and 2 threads, medians of 3 runs, measured like llama-bench (see
# llama_cpp_bench.mjs for the exact definitions).
#
# llama.cpp comes from npm, the only registry these machines reach: node-llama-cpp ships prebuilt
# libllama / libggml shared libraries and a Node addon, but no llama-bench or llama-cli binary, so
# the measurement drives libllama through node-llama-cpp's JS API. The linux-x64 package holds one
# ggml CPU backend per x86 level (sse42, sandybridge, haswell, skylakex, icelake, zen4, ...);
# ggml loads the best one the CPU supports (libggml-cpu-haswell.so, AVX2 + FMA + F16C, on our
# AVX2-only Zen 3), and the script prints which it loaded. GPU backends are never installed
# (--omit=optional) nor loaded (gpu: false).
#
# Install (once, outside the repository; Node >= 20):
#   mkdir -p /work/peers && cd /work/peers && npm init -y
#   NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --omit=optional \
#       node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1
# (--omit=optional skips the CUDA / Vulkan / other-platform binaries; the skip-download variable
# keeps the postinstall step from fetching or building llama.cpp sources.)
#
# Models: random weights of real shapes, made by `qkv make-model` (never commit them), e.g.
#   qkv make-model --preset gpt2-124m --dtype f32 -o /work/peers/models/gpt2-124m-f32.gguf
#   qkv make-model --preset llama-1b  --dtype f16 -o /work/peers/models/llama-1b-f16.gguf
#
# Usage: bench/peers/llama_cpp_bench.sh MODEL.gguf [MODEL.gguf ...]
#   env: PEERS_DIR (default /work/peers), THREADS (default 1,2), REPS (default 3),
#        PP (default 512), TG (default 128), FLASH_ATTN (off|on, default off),
#        NICE (default -20: the machine is shared; needs root, else runs at normal priority)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
peers="${PEERS_DIR:-/work/peers}"
if [[ ! -d "$peers/node_modules/node-llama-cpp" ]]; then
  echo "llama_cpp_bench.sh: node-llama-cpp is not installed in $peers (see the install lines at" \
       "the top of $0)" >&2
  exit 1
fi
if [[ $# -lt 1 ]]; then
  echo "usage: $0 MODEL.gguf [MODEL.gguf ...]" >&2
  exit 1
fi

nice_cmd=()
if [[ "${NICE:--20}" != "0" ]] && nice -n "${NICE:--20}" true 2>/dev/null; then
  nice_cmd=(nice -n "${NICE:--20}")
fi

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -n), $(nproc) CPUs," \
     "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), node $(node --version)"
for model in "$@"; do
  "${nice_cmd[@]}" node "$here/llama_cpp_bench.mjs" "$model" --peers "$peers" \
    --threads "${THREADS:-1,2}" --reps "${REPS:-3}" --pp "${PP:-512}" --tg "${TG:-128}" \
    --flash-attn "${FLASH_ATTN:-off}"
done
