// The forward kernels for head_dim 64 (one translation unit per head_dim keeps compiles parallel).
#include "core/error.h"
#include "cuda/flash_fwd.cuh"

namespace qkv::cuda {

using core::throw_error;

void flash_fwd_hdim64(const FlashParams& p, const LaunchPlan& plan, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (p.bf16) {
    plan.m_tiles == 2 ? launch_flash_fwd<__nv_bfloat16, 64, 2>(p, plan, s)
                      : launch_flash_fwd<__nv_bfloat16, 64, 1>(p, plan, s);
  } else {
    plan.m_tiles == 2 ? launch_flash_fwd<__half, 64, 2>(p, plan, s)
                      : launch_flash_fwd<__half, 64, 1>(p, plan, s);
  }
}

}  // namespace qkv::cuda
