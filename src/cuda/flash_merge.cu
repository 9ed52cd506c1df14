// Merge of split-KV partial results: each split s computed its normalised output o_s and
// lse_s = log(sum of its exp scores); the exact result is
//   lse = log(sum_s exp(lse_s)),   out = sum_s exp(lse_s - lse) * o_s.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda/flash_params.h"

namespace qkv::cuda {
namespace {

constexpr int kMergeWarps = 4;  // one warp per packed row

__global__ void __launch_bounds__(kMergeWarps * 32) flash_merge_kernel(const FlashParams p) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r = blockIdx.x * kMergeWarps + warp;
  const int bh = blockIdx.y;
  if (r >= p.n_rows) return;
  const int b = bh / p.n_head_kv, hk = bh % p.n_head_kv;
  const int64_t split_stride = static_cast<int64_t>(p.batch) * p.n_head_kv * p.n_rows;
  const int64_t row = static_cast<int64_t>(bh) * p.n_rows + r;

  float m = -INFINITY;
  for (int s = lane; s < p.n_splits; s += 32) m = fmaxf(m, p.lse_partial[s * split_stride + row]);
  for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  const int i = r / p.group, head = hk * p.group + r % p.group;
  const int64_t out_base = b * p.o_stride[0] + i * p.o_stride[1] + head * p.o_stride[2];

  // All splits empty (a fully masked row): out = 0, lse = -inf, as the reference.
  float total = 0.f;
  if (m != -INFINITY) {
    for (int s = 0; s < p.n_splits; ++s) total += __expf(p.lse_partial[s * split_stride + row] - m);
  }
  const float inv = total > 0.f ? 1.f / total : 0.f;
  for (int c = lane; c < p.head_dim; c += 32) {
    float acc = 0.f;
    if (m != -INFINITY) {
      for (int s = 0; s < p.n_splits; ++s) {
        const float w = __expf(p.lse_partial[s * split_stride + row] - m);
        if (w > 0.f) acc += w * p.o_partial[(s * split_stride + row) * p.head_dim + c];
      }
    }
    const float x = acc * inv;
    const int64_t off = out_base + c * p.o_stride[3];
    if (p.out_dtype == 0) {
      static_cast<float*>(p.out)[off] = x;
    } else if (p.out_dtype == 1) {
      static_cast<__half*>(p.out)[off] = __float2half_rn(x);
    } else {
      static_cast<__nv_bfloat16*>(p.out)[off] = __float2bfloat16_rn(x);
    }
  }
  if (p.lse && lane == 0) {
    p.lse[(static_cast<int64_t>(b) * p.n_head + head) * p.n_q + i] =
        total > 0.f ? m + __logf(total) : -INFINITY;
  }
}

}  // namespace

void flash_merge(const FlashParams& p, void* stream) {
  const dim3 grid((p.n_rows + kMergeWarps - 1) / kMergeWarps, p.batch * p.n_head_kv);
  flash_merge_kernel<<<grid, kMergeWarps * 32, 0, static_cast<cudaStream_t>(stream)>>>(p);
}

bool flash_kernels_loadable() {
  cudaFuncAttributes attr;
  const bool ok = cudaFuncGetAttributes(&attr, flash_merge_kernel) == cudaSuccess;
  cudaGetLastError();  // clear the sticky-free error so later calls do not see it
  return ok;
}

}  // namespace qkv::cuda
