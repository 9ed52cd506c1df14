// probes_impl.inc compiled per SIMD target (kernels/cpu/targets.h).
#include "kernels/cpu/target_common.h"  // standard headers, before any target pragma

#include "qkv_bench/probe_targets.h"

namespace qkv::bench {

namespace generic {
#include "kernels/cpu/simd_generic.h"
// clang-format off
#include "probes_impl.inc"
// clang-format on
}  // namespace generic

#if QKV_X86
QKV_TARGET_BEGIN(QKV_TARGET_AVX2)
namespace avx2 {
#include "kernels/cpu/simd_avx2.h"
// clang-format off
#include "probes_impl.inc"
// clang-format on
}  // namespace avx2
QKV_TARGET_END

#if !defined(__clang__)
// GCC 12's own AVX-512 intrinsic headers trip these (their _mm512_undefined_* idiom).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
QKV_TARGET_BEGIN(QKV_TARGET_AVX512)
namespace avx512 {
#include "kernels/cpu/simd_avx512.h"
// clang-format off
#include "probes_impl.inc"
// clang-format on
}  // namespace avx512
QKV_TARGET_END
#endif

namespace {

#define QKV_PROBE_OPS(target)                                                                    \
  ProbeOps {                                                                                     \
    .name = #target, .fma_peak = target::probes::fma_peak, .read_sum = target::probes::read_sum, \
    .softmax_row = target::probes::softmax_row, .to_f32 = target::probes::to_f32                 \
  }
const ProbeOps kGeneric = QKV_PROBE_OPS(generic);
#if QKV_X86
const ProbeOps kAvx2 = QKV_PROBE_OPS(avx2);
const ProbeOps kAvx512 = QKV_PROBE_OPS(avx512);
const kernels::cpu::TargetTable<ProbeOps> kTargets = {&kGeneric, &kAvx2, &kAvx512};
#else
const kernels::cpu::TargetTable<ProbeOps> kTargets = {&kGeneric, nullptr, nullptr};
#endif

}  // namespace

const ProbeOps& probe_ops_selected() {
  return kernels::cpu::pick_target(kTargets, kernels::cpu::selected_target());
}

std::vector<const ProbeOps*> probe_ops_runnable() {
  return kernels::cpu::runnable_tables(kTargets);
}

}  // namespace qkv::bench
