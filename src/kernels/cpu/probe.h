// Measurements of this machine's limits, taken by the same binary that runs the kernels, so that
// benchmarks report ratios against what this CPU really does (docs/PERFORMANCE.md).
#pragma once

namespace qkv::kernels {

struct MachinePeak {
  double fma_gflops = 0;  // fp32 FMA throughput of `threads` cores together, GFLOP/s
  double read_gbps = 0;   // read bandwidth from DRAM with `threads` cores, GB/s
  int threads = 0;
  const char* target = "";
};

// Takes about `seconds` for each of the two measurements.
MachinePeak measure_machine_peak(int threads, double seconds = 0.3);

}  // namespace qkv::kernels
