// Headers every target unit includes before it opens its target namespace, so that no standard
// header is compiled under a `#pragma GCC target` (which would let a higher ISA leak into inline
// functions shared with other units).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>
#include <type_traits>
#include <utility>

#include "core/arena.h"
#include "core/cpu_features.h"
#include "core/half.h"
#include "kernels/attention_problem.h"
#include "kernels/cpu/plan.h"
#include "kernels/cpu/targets.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QKV_X86 1
#else
#define QKV_X86 0
#endif
