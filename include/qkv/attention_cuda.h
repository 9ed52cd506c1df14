// qkv — exact scaled dot-product attention on NVIDIA GPUs (sm_80 and newer).
//
// The same function as attention() in attention.h, computed by FlashAttention-2-style kernels
// (tiles in shared memory, tensor-core products, online softmax in fp32 registers).
//
// Shapes (device memory; a View4 may have any strides as long as head_dim is contiguous):
//   q    [batch, n_q,  n_head,    head_dim]     f16 or bf16
//   k    [batch, n_kv, n_head_kv, head_dim]     same dtype as q
//   v    [batch, n_kv, n_head_kv, head_dim]     same dtype as q (head_dim_v == head_dim)
//   out  [batch, n_q,  n_head,    head_dim]     f32, f16 or bf16, any strides
//   lse  [batch, n_head, n_q]                   fp32, dense, optional (natural log)
// head_dim is 64, 96, 128 or 256. q, k and v need stride[3] = 1, the other strides a multiple of
// 8 elements and 16-byte aligned data (the kernels load 16-byte vectors).
//
// Options (AttentionOptions): scale, causal, kv_lengths, q_offsets, window_left/right are
// supported. kv_lengths and q_offsets are HOST arrays [batch], as for the CPU backends; they are
// validated and copied to the device on `stream`. mask, alibi_slopes and softcap are not
// implemented and throw InvalidArgument naming the option; backend must stay automatic.
// precision and n_threads do not apply: products of the 16-bit inputs are exact in fp32 and
// accumulate in fp32; the softmax probabilities are rounded to the input dtype for the second
// product (as in FlashAttention).
//
// The call is asynchronous on `stream` (a cudaStream_t, null = the legacy default stream), except
// that kv_lengths/q_offsets are copied before it returns. Errors of the CUDA runtime throw Error.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "qkv/attention.h"
#include "qkv/dtype.h"

namespace qkv {

// A writable 4-D strided view of any dtype (device memory for attention_cuda).
struct OutView4 {
  void* data = nullptr;
  DType dtype = DType::f32;
  std::array<int64_t, 4> shape{};
  std::array<int64_t, 4> stride{};

  static OutView4 dense(void* data, DType dtype, std::array<int64_t, 4> shape);
};

// lse (device memory) is empty or exactly [batch, n_head, n_q], like attention()'s.
void attention_cuda(const View4& q, const View4& k, const View4& v, const OutView4& out,
                    std::span<float> lse, const AttentionOptions& options = {},
                    void* stream = nullptr);

// True when a CUDA device is present and this build has code for it.
bool attention_cuda_available();

}  // namespace qkv
