// The CPU attention backend: tiled online softmax with runtime SIMD dispatch and threads.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "kernels/attention_problem.h"

namespace qkv::kernels {

namespace cpu {
struct TargetOps;
}

void attention_cpu(const AttentionProblem& p);
// The same on a chosen SIMD target (tests run every target the machine supports).
void attention_cpu_on(const AttentionProblem& p, const cpu::TargetOps& ops);

// Exact softmax rows of one (batch, head) recomputed from q, k and lse (attention.h).
void attention_probs_cpu(const AttentionProblem& p, const float* lse, int64_t batch, int64_t head,
                         std::span<const int64_t> rows, float* probs);

// "avx512", "avx2" or "generic"; QKV_CPU_TARGET in the environment can lower the choice (tests
// use it to run every target the machine supports).
std::string_view cpu_target_name();

// What the bf16 mode's prefill multiplies with on the selected target (TargetOps::bf16_path).
std::string_view cpu_bf16_path(int64_t head_dim);

}  // namespace qkv::kernels
