// The benchmarks' per-target pieces (probes_impl.inc), one table per SIMD target, chosen like the
// kernels' (kernels/cpu/targets.h).
#pragma once

#include <cstdint>
#include <vector>

#include "qkv/dtype.h"

namespace qkv::bench {

struct ProbeOps {
  const char* name;
  // Measures the FMA throughput of one core for about `seconds`; returns GFLOP/s.
  double (*fma_peak)(double seconds);
  // Sum of n floats, n a multiple of 64: used to measure read bandwidth.
  float (*read_sum)(const float* x, int64_t n);
  // For the materialised peer: one row's softmax over its first n_valid entries, zeros after
  // them; and n elements of type dt converted to fp32.
  void (*softmax_row)(float* s, int64_t n_valid, int64_t n);
  void (*to_f32)(const void* src, DType dt, float* dst, int64_t n);
};

// The table of kernels::cpu::selected_target() (the target the kernels run).
const ProbeOps& probe_ops_selected();
// Every table this CPU can run, generic first (the tests run them all).
std::vector<const ProbeOps*> probe_ops_runnable();

}  // namespace qkv::bench
