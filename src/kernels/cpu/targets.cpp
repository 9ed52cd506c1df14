#include "kernels/cpu/targets.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/cpu_features.h"

namespace qkv::kernels::cpu {
namespace {

Target best_target() {
  const auto& f = core::cpu_features();
  return f.has_avx512_target() ? Target::avx512
         : f.has_avx2_target() ? Target::avx2
                               : Target::generic;
}

Target select() {
  Target t = best_target();
  if (const char* env = std::getenv("QKV_CPU_TARGET")) {
    const Target want = std::strcmp(env, "avx512") == 0 ? Target::avx512
                        : std::strcmp(env, "avx2") == 0 ? Target::avx2
                                                        : Target::generic;
    t = std::min(t, want);  // can lower the choice, never raise it past the CPU
  }
  return t;
}

}  // namespace

const char* target_name(Target t) {
  switch (t) {
    case Target::avx2:
      return "avx2";
    case Target::avx512:
      return "avx512";
    case Target::generic:
      break;
  }
  return "generic";
}

Target selected_target() {
  static const Target t = select();
  return t;
}

bool target_runnable(Target t) {
  return t <= best_target();
}

}  // namespace qkv::kernels::cpu
