// qkv bench attention --mpi: ring attention over the ranks of an MPI job (cmd_bench_mpi.cpp).
#pragma once

#include <cstdint>
#include <string>

namespace qkv::app {

struct MpiBenchArgs {
  int64_t batch = 1, n_seq = 0, heads = 0, kv_heads = 0, head_dim = 0;
  bool causal = false;
  std::string dtype = "f32";
  int threads = 0;  // per rank; 0: 1
  int reps = 0;     // 0: 3
  int64_t delay_us = 0;
  bool json = false;
  bool backward = false;
};

void run_bench_mpi(const MpiBenchArgs& a);

}  // namespace qkv::app
