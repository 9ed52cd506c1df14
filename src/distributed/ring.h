// What the ring's forward and backward passes share: the validated problem and its layout.
#pragma once

#include <cstdint>
#include <vector>

#include "qkv/attention.h"
#include "qkv/distributed.h"

namespace qkv::distributed {

struct RingProblem {
  int n_ranks, rank;
  int64_t n_seq;
  ZigZagShard me;
  int64_t batch = 0, n_head = 0, head_dim = 0, n_head_kv = 0, head_dim_v = 0;
  std::vector<int64_t> q_pos0;  // [batch] global position of global query 0

  // Checks this rank's shapes against its shard and every rank's fingerprint against rank 0's;
  // throws InvalidArgument ("what" names the call).
  RingProblem(Communicator& comm, const char* what, const View4& q, const View4& k, const View4& v,
              int64_t n_seq, const AttentionOptions& options);

  // Bytes of rank src's packed K/V block (k then v, in `dtype`).
  int64_t kv_bytes(int src, DType dtype) const;
};

}  // namespace qkv::distributed
