// Measurements of this machine's limits, taken by the same binary that runs the kernels, so that
// benchmarks report ratios against what this CPU really does (docs/PERFORMANCE.md). Part of
// qkv_bench_support (bench/support), not of the kernels library.
#pragma once

#include <cstddef>

namespace qkv::kernels {

struct MachinePeak {
  double fma_gflops = 0;  // fp32 FMA throughput of `threads` cores together, GFLOP/s
  double read_gbps = 0;   // read bandwidth from DRAM with `threads` cores, GB/s
  int threads = 0;
  const char* target = "";
};

// Takes about `seconds` for each of the two measurements.
MachinePeak measure_machine_peak(int threads, double seconds = 0.3);

// GB/s at which a plain vector loop reads `bytes` of each of two buffers (the K and V of a decode),
// `threads` threads each taking the same share of both and alternating between them in 4 KiB
// chunks, as a decode reads a key range's K and V rows. Median of passes taking about `seconds`
// (at least five). Nothing but the read: the ceiling a memory-bound kernel on those bytes could
// reach. 0 when a share is smaller than one chunk.
double measure_stream_read(const void* a, const void* b, std::size_t bytes, int threads,
                           double seconds = 0.3);

}  // namespace qkv::kernels
