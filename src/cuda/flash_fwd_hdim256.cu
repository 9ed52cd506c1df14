// The forward kernels for head_dim 256 (one translation unit per head_dim keeps compiles parallel).
#include "core/error.h"
#include "cuda/flash_fwd.cuh"

namespace qkv::cuda {

using core::throw_error;

void flash_fwd_hdim256(const FlashParams& p, const LaunchPlan& plan, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (plan.m_tiles != 1) throw_error("flash_fwd: head_dim 256 runs with 1 m-tile per warp");
  if (p.bf16) {
    launch_flash_fwd<__nv_bfloat16, 256, 1>(p, plan, s);
  } else {
    launch_flash_fwd<__half, 256, 1>(p, plan, s);
  }
}

}  // namespace qkv::cuda
