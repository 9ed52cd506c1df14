// The portable target: the same algorithm with one float per vector; runs on any CPU.
#include "kernels/cpu/target_common.h"

namespace qkv::kernels::cpu::generic {
#include "kernels/cpu/simd_generic.h"
// clang-format off
#include "kernels/cpu/flash_impl.inc"
// clang-format on
}  // namespace qkv::kernels::cpu::generic

namespace qkv::kernels::cpu {
const TargetOps& target_generic() {
  static const TargetOps ops{"generic",           generic::run_item,  generic::probs_rows,
                             generic::pack_shape, generic::pack_tile, generic::fma_peak,
                             generic::read_sum,   generic::bf16_path, generic::softmax_row,
                             generic::to_f32};
  return ops;
}
}  // namespace qkv::kernels::cpu
