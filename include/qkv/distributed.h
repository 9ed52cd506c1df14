// qkv — exact sequence-parallel attention over the processes of an MPI job (docs/DISTRIBUTED.md).
//
// One long sequence of n_seq tokens is split over the ranks of a job started by `mpirun -np P`:
// ring attention passes K/V blocks around the ranks while each runs the CPU attention kernel on
// the block it holds, and merges the partial results by log-sum-exp; decode against a KV cache
// sharded over the ranks reduces one (out, lse) pair per rank. Both are exact: they compute the
// same softmax as one attention() call over the whole sequence, only in another order of sums.
//
// Layout ("zig-zag"): the sequence is cut into 2P chunks whose sizes differ by at most one
// (chunk c starts at c * n_seq / (2P)); rank r holds chunks r and 2P-1-r, in that order, so that
// under a causal mask every rank does the same work. A rank's local tensors hold its tokens only:
//   q, out   [batch, n_local, n_head,    head_dim(_v)]
//   k, v     [batch, n_local, n_head_kv, head_dim(_v)]   f32, f16, bf16 or q8_0 (blocks move
//                                                         as they are)
//   lse      [batch, n_head, n_local]  dense
// with n_local = zigzag_shard(n_seq, rank, P).n_local().
//
// Options are those of attention() in global terms: positions are those of the whole sequence
// (query and key index = global token index; q_offsets shifts the queries as there), kv_lengths
// counts global keys, and an explicit mask is the whole [n_seq, n_seq] mask, passed by every
// rank. Every rank must pass the same problem (shapes, options, mask contents): each call first
// gathers a fingerprint of it from all ranks and throws InvalidArgument naming the first field and
// rank that disagree, before any work.
//
// Built without MPI (QKV_MPI=OFF, or AUTO where no MPI was found), world() is a job of one rank
// and everything still works, locally.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "qkv/attention.h"
#include "qkv/dtype.h"

namespace qkv {

// True when this build talks to MPI (docs/DISTRIBUTED.md, QKV_MPI).
bool distributed_has_mpi();

// The ranks of this job. Transfers are watched: a peer that neither sends nor receives for
// timeout_s seconds, or that MPI reports failed, raises an Error naming that rank; after such an
// error the process exits through MPI_Abort (so that the other ranks stop too) rather than
// waiting in MPI_Finalize.
class Communicator {
 public:
  // MPI_COMM_WORLD, initialised on first use (MPI_Init_thread, finalised at exit).
  static Communicator& world();

  int rank() const { return rank_; }
  int size() const { return size_; }

  // A peer silent this long is reported lost. Default 60 s, or QKV_MPI_TIMEOUT_S.
  double timeout_s = 60.0;
  // Emulated link: each K/V block is only taken as received this many microseconds after it was
  // sent (at the earliest); for `qkv bench attention --mpi-delay-us`. Default 0.
  int64_t delay_us = 0;

  // Byte collectives for callers above (the runtime, the CLI).
  void barrier();
  // Gathers `bytes` bytes from each rank into all (out: size() * bytes).
  void allgather(const void* in, void* out, int64_t bytes);
  void broadcast(void* data, int64_t bytes, int root);
  // Gathers bytes[r] bytes from each rank r into `out` on `root`, in rank order (out holds the
  // sum of bytes[]; it is not touched on the other ranks). Every rank passes the same bytes[].
  void gather(const void* in, void* out, std::span<const int64_t> bytes, int root);
  // Every rank gets the maximum over the ranks of `value`.
  double max(double value);
  // Ends every rank of the job with exit code `code` (MPI_Abort); for fatal errors.
  [[noreturn]] void abort(int code);

 private:
  Communicator();
  int rank_ = 0;
  int size_ = 1;
};

// The global tokens one rank holds: [begin[0], begin[0] + len[0]) then [begin[1], ...).
struct ZigZagShard {
  int64_t begin[2] = {0, 0};
  int64_t len[2] = {0, 0};
  int64_t n_local() const { return len[0] + len[1]; }
  // The global position of local token t.
  int64_t global(int64_t t) const { return t < len[0] ? begin[0] + t : begin[1] + t - len[0]; }
};
ZigZagShard zigzag_shard(int64_t n_seq, int rank, int n_ranks);

// Where a ring call spent its time on this rank (seconds). comm_s is the time the K/V transfers
// took from post to arrival; wait_s the part of it the rank waited for after its own compute
// (not hidden behind it).
struct RingStats {
  double compute_s = 0;
  double comm_s = 0;
  double wait_s = 0;
  double total_s = 0;
  int64_t bytes_sent = 0;
  int steps = 0;
  double hidden_fraction() const { return comm_s > 0 ? 1.0 - wait_s / comm_s : 1.0; }
};

// Ring attention forward: out and lse (optional, empty = not wanted) of this rank's queries
// against all n_seq keys. Shapes in the header comment.
void ring_attention(Communicator& comm, const View4& q, const View4& k, const View4& v,
                    const MutView4& out, std::span<float> lse, int64_t n_seq,
                    const AttentionOptions& options = {}, RingStats* stats = nullptr);

// Ring attention backward: dq of this rank's queries, dk and dv of its keys (summed over every
// rank's queries: they travel around the ring with their K/V block). out and lse are the
// forward's, dout the gradient of the loss w.r.t. out; fp32 tensors as attention_backward().
void ring_attention_backward(Communicator& comm, const View4& q, const View4& k, const View4& v,
                             const View4& out, std::span<const float> lse, const View4& dout,
                             const MutView4& dq, const MutView4& dk, const MutView4& dv,
                             int64_t n_seq, const AttentionOptions& options = {},
                             RingStats* stats = nullptr);

// Decode against a KV cache sharded over the ranks: every rank passes the same queries
//   q [batch, n_q, n_head, head_dim]
// and its shard of the n_kv keys, global keys [shard_begin, shard_begin + k.shape[1]); each
// computes (out, lse) on its shard and the pairs are reduced in rank order, so that every rank
// gets the same out [batch, n_q, n_head, head_dim_v] and lse (optional) [batch, n_head, n_q].
// Options in global terms (q_offsets, kv_lengths, a [n_q, n_kv] mask), as for attention() with
// all n_kv keys.
void sharded_decode_attention(Communicator& comm, const View4& q, const View4& k, const View4& v,
                              const MutView4& out, std::span<float> lse, int64_t shard_begin,
                              int64_t n_kv, const AttentionOptions& options = {});

// Global keys [begin, begin + len).
struct KeyRange {
  int64_t begin = 0;
  int64_t len = 0;
};

// The same with a shard of several ranges of keys (a KV cache that took the zig-zag chunks of a
// prefill and then decode tokens): k and v hold the keys of shard[0], then shard[1], ...; the
// ranges of all ranks together must tile [0, n_kv). The partials of every range are merged in
// key order on every rank.
void sharded_decode_attention(Communicator& comm, const View4& q, const View4& k, const View4& v,
                              const MutView4& out, std::span<float> lse,
                              std::span<const KeyRange> shard, int64_t n_kv,
                              const AttentionOptions& options = {});

// One argument of a job (a command-line option, a fingerprint of an input file) that every rank
// must have been given alike.
struct JobArgument {
  std::string name;   // "--prompt", "model file"
  std::string value;  // as text
};

// Gathers every rank's arguments (hashes, then the text of the first one that differs) and throws
// InvalidArgument naming that argument, the rank and both values when a rank differs from rank 0
// ("qkv eval: rank 1 was given --prompt = \"a dog\" but rank 0 \"a cat\"; ..."). For the
// runtime and the CLI, before any work.
void check_same_arguments(Communicator& comm, std::string_view what,
                          std::span<const JobArgument> arguments);

}  // namespace qkv
