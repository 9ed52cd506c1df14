// The one way code is compiled per SIMD target and chosen at run time, for every kernel family
// (attention forward and backward, linear layers) and the benchmark probes (bench/support).
//
// A family writes its code once, over the `Simd` traits of simd_*.h, and compiles it in one
// namespace per target, each between QKV_TARGET_BEGIN and QKV_TARGET_END:
//
//   #include "kernels/cpu/target_common.h"  // every standard header first (see there)
//   #if QKV_X86
//   QKV_TARGET_BEGIN(QKV_TARGET_AVX2)
//   namespace my_family::avx2 {
//   #include "kernels/cpu/simd_avx2.h"
//   #include "my_family.inc"
//   }
//   QKV_TARGET_END
//   #endif
//
// It lists its per-target tables in target order (null where it has no code for a target) and
// takes the one for selected_target() with pick_target(), which falls back to the nearest lower
// target the family has (the avx2 linear kernels also serve avx512 machines).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#define QKV_PRAGMA(...) _Pragma(#__VA_ARGS__)
#if defined(__clang__)
#define QKV_TARGET_BEGIN(features) \
  QKV_PRAGMA(clang attribute push(__attribute__((target(features))), apply_to = function))
#define QKV_TARGET_END QKV_PRAGMA(clang attribute pop)
#else
#define QKV_TARGET_BEGIN(features) QKV_PRAGMA(GCC push_options) QKV_PRAGMA(GCC target(features))
#define QKV_TARGET_END QKV_PRAGMA(GCC pop_options)
#endif

// The instruction sets of each target: what cpu_features().has_*_target() checks, and for
// avx512 the bf16 dot products and AMX tiles that its kernels use only where cpuid reports them.
#define QKV_TARGET_AVX2 "avx2,fma,f16c"
#define QKV_TARGET_AVX512 \
  "avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,amx-tile,amx-bf16,avx2,fma,f16c"

namespace qkv::kernels::cpu {

enum class Target : uint8_t { generic, avx2, avx512 };
inline constexpr int kTargetCount = 3;

// "generic", "avx2", "avx512".
const char* target_name(Target t);
// The best target this CPU runs, lowered (never raised) by QKV_CPU_TARGET=generic|avx2|avx512 in
// the environment (any other value: generic). Read once.
Target selected_target();
// Whether this CPU can run t.
bool target_runnable(Target t);

// A family's per-target tables, in Target order; null: no code for that target.
template <class Ops>
using TargetTable = std::array<const Ops*, kTargetCount>;

// The table of target t, or of the nearest lower target the family has code for.
template <class Ops>
const Ops& pick_target(const TargetTable<Ops>& table, Target t) {
  for (int i = static_cast<int>(t); i > 0; --i) {
    if (table[i]) return *table[i];
  }
  return *table[0];
}

// The distinct tables among the targets this CPU runs, generic first (the tests run them all).
template <class Ops>
std::vector<const Ops*> runnable_tables(const TargetTable<Ops>& table) {
  std::vector<const Ops*> out;
  for (int i = 0; i < kTargetCount; ++i) {
    if (table[i] && target_runnable(static_cast<Target>(i)) &&
        std::find(out.begin(), out.end(), table[i]) == out.end()) {
      out.push_back(table[i]);
    }
  }
  return out;
}

}  // namespace qkv::kernels::cpu
