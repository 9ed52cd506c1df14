// Materialised attention with the GEMM library: the peer that `qkv bench attention` times in the
// same run as the fused kernel. It computes attention the way a framework's non-fused path does
// (PyTorch's math attention: two batched matrix products around a softmax): per (sequence, query
// head), S = scale · Q·Kᵀ for a block of query rows against every key (one sgemm), the causal
// mask and the row softmax, then O = P·V (one sgemm). Not a backend: S takes
// O(rows · n_kv) memory, and only the causal mask is supported. Part of qkv_bench_support
// (bench/support), not of the kernels library.
#pragma once

#include <string_view>

#include "qkv/dtype.h"

namespace qkv::kernels::cpu {

// True when the build has the GEMM library (otherwise attention_materialised throws).
bool attention_materialised_available();

// The GEMM library the products run on ("OpenBLAS", ...), for the reports.
std::string_view attention_materialised_library();

// out = softmax(scale · q·kᵀ [+ causal mask]) · v with scale 1/√head_dim; shapes as in
// qkv::attention (q and out fp32 with unit stride along head_dim; k and v fp32, f16 or bf16, any
// strides, GQA/MQA). The causal mask is aligned bottom-right, as in qkv::attention. Query rows go
// in blocks whose S holds at most 16 Mi floats (64 MiB); `threads` threads for the products and
// the softmax.
void attention_materialised(const View4& q, const View4& k, const View4& v, const MutView4& out,
                            bool causal, int threads);

}  // namespace qkv::kernels::cpu
