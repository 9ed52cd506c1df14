// The backward pass of attention on the CPU: the validated problem shared by the reference
// (attention_backward.cpp) and the tiled kernel (attention_backward_cpu.cpp).
#pragma once

#include <string_view>

#include "kernels/attention_problem.h"

namespace qkv::kernels {

struct BackwardProblem {
  AttentionProblem p;  // q, k, v, options and sizes (p.out and p.lse are unused)
  View4 out;           // [batch, n_q, n_head, head_dim_v]   the forward's output, fp32
  const float* lse;    // [batch, n_head, n_q]               the forward's lse, dense
  View4 dout;          // [batch, n_q, n_head, head_dim_v]   fp32
  MutView4 dq;         // [batch, n_q, n_head, head_dim]
  MutView4 dk;         // [batch, n_kv, n_head_kv, head_dim]
  MutView4 dv;         // [batch, n_kv, n_head_kv, head_dim_v]
};

// Naive and materialised per (batch, head), double accumulation: the oracle.
void attention_backward_reference(const BackwardProblem& bp);
// Flash-style: tiles of keys x queries, probabilities recomputed from lse, threads.
void attention_backward_cpu(const BackwardProblem& bp);
// The same on a chosen target: "generic", or "avx2" (also used on avx512 machines). Tests run both.
void attention_backward_cpu_on(const BackwardProblem& bp, std::string_view target);

}  // namespace qkv::kernels
