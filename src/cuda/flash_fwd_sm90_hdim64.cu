// The Hopper (wgmma) forward kernel for head_dim 64; its body is empty in the sm_80 pass.
#include "cuda/flash_fwd_sm90.cuh"

namespace qkv::cuda {

void flash_fwd_sm90_hdim64(const FlashParams& p, const LaunchPlan& plan, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (p.bf16) {
    launch_flash_fwd_sm90<__nv_bfloat16, 64>(p, plan, s);
  } else {
    launch_flash_fwd_sm90<__half, 64>(p, plan, s);
  }
}

}  // namespace qkv::cuda
