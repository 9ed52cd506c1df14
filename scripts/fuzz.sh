#!/usr/bin/env bash
# Bounded libFuzzer run of the model-file, config.json and tokenizer parsers and the chat-template
# interpreter (ASan + UBSan), for CI:
#   scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]   (default 45 s; all seven targets)
# Builds fuzz/ with clang in build/fuzz, runs each target on a copy of its seed corpus
# (fuzz/corpus/<target>) for the given time, and fails on the first crash, leak or UB report.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-45}"
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(gguf safetensors llama2c tokenizer_json encode chat_template hf_config)
cxx="$(command -v clang++-14 || command -v clang++ || true)"
if [[ -z "$cxx" ]]; then
  echo "fuzz.sh: clang++ not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi
cmake -S fuzz -B build/fuzz -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/fuzz -j2
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
failed=0
passed=0
for target in "${targets[@]}"; do
  work="build/fuzz/corpus-$target"
  mkdir -p "$work" "build/fuzz/artifacts-$target"
  cp -n fuzz/corpus/"$target"/* "$work"/ 2>/dev/null || true
  echo "== fuzz_$target for ${secs}s"
  # -rss_limit_mb: a parser that allocates from an untrusted count fails here, not in production.
  if ! build/fuzz/fuzz_"$target" "$work" -max_total_time="$secs" -max_len=65536 -timeout=10 \
      -rss_limit_mb=1024 -artifact_prefix="build/fuzz/artifacts-$target/" -print_final_stats=1 \
      2>"build/fuzz/fuzz_$target.log"; then
    echo "fuzz_$target FAILED; see build/fuzz/fuzz_$target.log and build/fuzz/artifacts-$target/"
    grep -E -A12 "runtime error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)" \
      "build/fuzz/fuzz_$target.log" | head -40
    tail -5 "build/fuzz/fuzz_$target.log"
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
    grep -E "stat::number_of_executed_units|cov:" "build/fuzz/fuzz_$target.log" | tail -2
  fi
done
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
