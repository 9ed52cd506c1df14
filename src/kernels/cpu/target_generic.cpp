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
  static const TargetOps ops{
      .name = "generic",
      .run_item = generic::run_item,
      .probs_rows = generic::probs_rows,
      .pack_shape = generic::pack_shape,
      .pack_tile = generic::pack_tile,
      .bf16_path = generic::bf16_path,
  };
  return ops;
}
}  // namespace qkv::kernels::cpu
