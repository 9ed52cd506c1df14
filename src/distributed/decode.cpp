// Decode against a KV cache sharded over the ranks (include/qkv/distributed.h): each rank runs
// the kernel on its shard, the (out, lse) pairs are gathered to every rank and merged in rank
// order, so every rank holds the same, deterministic result.
#include <algorithm>
#include <array>
#include <limits>
#include <vector>

#include "core/error.h"
#include "distributed/block.h"
#include "distributed/fingerprint.h"

namespace qkv {

void sharded_decode_attention(Communicator& comm, const View4& q, const View4& k, const View4& v,
                              const MutView4& out, std::span<float> lse, int64_t shard_begin,
                              int64_t n_kv, const AttentionOptions& options) {
  if (shard_begin < 0 || k.shape[1] < 0 || shard_begin + k.shape[1] > n_kv) {
    core::throw_invalid("sharded_decode_attention: rank ", comm.rank(), "'s shard [", shard_begin,
                        ", ", shard_begin + k.shape[1], ") is outside the n_kv = ", n_kv, " keys");
  }
  const KeyRange one{shard_begin, k.shape[1]};
  sharded_decode_attention(comm, q, k, v, out, lse, std::span<const KeyRange>(&one, 1), n_kv,
                           options);
}

void sharded_decode_attention(Communicator& comm, const View4& q, const View4& k, const View4& v,
                              const MutView4& out, std::span<float> lse,
                              std::span<const KeyRange> shard, int64_t n_kv,
                              const AttentionOptions& options) {
  using namespace distributed;
  const int64_t B = q.shape[0], n_q = q.shape[1], H = q.shape[2], Dv = v.shape[3];
  const int64_t n_shard = k.shape[1];
  check_blocks("sharded_decode_attention", k, v);
  if (out.shape != std::array<int64_t, 4>{B, n_q, H, Dv}) {
    core::throw_invalid("sharded_decode_attention: out has shape [", out.shape[0], ", ",
                        out.shape[1], ", ", out.shape[2], ", ", out.shape[3], "], expected [", B,
                        ", ", n_q, ", ", H, ", ", Dv, "]");
  }
  if (!lse.empty() && static_cast<int64_t>(lse.size()) != B * H * n_q) {
    core::throw_invalid("sharded_decode_attention: lse has ", lse.size(),
                        " values, expected batch * n_head * n_q = ", B * H * n_q);
  }
  int64_t held = 0;
  for (const KeyRange& r : shard) {
    if (r.begin < 0 || r.len < 0 || r.begin + r.len > n_kv) {
      core::throw_invalid("sharded_decode_attention: rank ", comm.rank(), "'s shard [", r.begin,
                          ", ", r.begin + r.len, ") is outside the n_kv = ", n_kv, " keys");
    }
    held += r.len;
  }
  if (held != n_shard) {
    core::throw_invalid("sharded_decode_attention: rank ", comm.rank(), "'s ranges hold ", held,
                        " keys but k has ", n_shard);
  }
  if (options.mask.kind != MaskKind::none &&
      (options.mask.n_q != n_q || options.mask.n_kv != n_kv)) {
    core::throw_invalid("sharded_decode_attention: the mask is [", options.mask.n_q, ", ",
                        options.mask.n_kv, "] but must be the whole [n_q, n_kv] = [", n_q, ", ",
                        n_kv, "]");
  }
  Fingerprint f;
  f.add_view("q", q);
  f.add("n_kv", n_kv);
  f.add("n_head_kv", k.shape[2]);
  f.add("head_dim_v", Dv);
  f.add("k dtype", static_cast<int64_t>(k.dtype));
  f.add_options(options, n_q, n_kv);
  f.check(comm, "sharded_decode_attention");
  // Every rank's ranges (padded to the longest list), which must tile [0, n_kv): every key
  // counted once.
  const int P = comm.size();
  const int64_t n_mine = static_cast<int64_t>(shard.size());
  std::vector<int64_t> counts(static_cast<size_t>(P));
  comm.allgather(&n_mine, counts.data(), sizeof(int64_t));
  const int64_t max_ranges = std::max<int64_t>(1, *std::max_element(counts.begin(), counts.end()));
  std::vector<int64_t> mine(static_cast<size_t>(2 * max_ranges), 0);
  for (size_t i = 0; i < shard.size(); ++i) {
    mine[2 * i] = shard[i].begin;
    mine[2 * i + 1] = shard[i].len;
  }
  std::vector<int64_t> ranges(static_cast<size_t>(P) * mine.size());
  comm.allgather(mine.data(), ranges.data(), static_cast<int64_t>(mine.size() * sizeof(int64_t)));
  // The ranges in the order of their keys (empty ones first where they start).
  std::vector<std::array<int64_t, 4>> order;  // begin, length, rank, index in its list
  for (int s = 0; s < P; ++s) {
    for (int64_t i = 0; i < counts[s]; ++i) {
      const int64_t* e = ranges.data() + static_cast<size_t>(s) * mine.size() + 2 * i;
      order.push_back({e[0], e[1], s, i});
    }
  }
  std::sort(order.begin(), order.end());
  {
    int64_t at = 0;
    for (auto [begin, len, s, i] : order) {
      if (begin != at) {
        core::throw_invalid("sharded_decode_attention: the shards do not tile the n_kv = ", n_kv,
                            " keys: rank ", s, "'s starts at ", begin, " where ", at,
                            " was expected");
      }
      at += len;
    }
    if (at != n_kv) {
      core::throw_invalid("sharded_decode_attention: the shards cover ", at,
                          " of the n_kv = ", n_kv, " keys");
    }
  }

  // This rank's (out, lse) per range: [B, n_q, H, Dv] then [B, H, n_q].
  const int64_t n_out = B * n_q * H * Dv, n_lse = B * H * n_q, n_part = n_out + n_lse;
  std::vector<float> parts(static_cast<size_t>(max_ranges * n_part), 0.f);
  const std::vector<int64_t> pos0 = query_positions(options, B, n_q, n_kv);
  int64_t row = 0;
  for (size_t i = 0; i < shard.size(); ++i) {
    float* part = parts.data() + static_cast<int64_t>(i) * n_part;
    std::fill(part + n_out, part + n_part, -std::numeric_limits<float>::infinity());
    const KeyRange& r = shard[i];
    if (r.len > 0 && n_q > 0) {
      const BlockOptions bo(options, pos0, 0, n_q, r.begin, r.len);
      if (!bo.empty) {
        attention(q, rows(k, row, r.len), rows(v, row, r.len),
                  MutView4::dense(part, {B, n_q, H, Dv}),
                  std::span<float>(part + n_out, static_cast<size_t>(n_lse)), bo.opt);
      }
    }
    row += r.len;
  }
  std::vector<float> all(static_cast<size_t>(P) * parts.size());
  comm.allgather(parts.data(), all.data(), static_cast<int64_t>(parts.size() * sizeof(float)));
  // Merged in the order of the keys, as one call over all keys would sum.
  std::vector<float> acc_out(static_cast<size_t>(n_out), 0.f);
  std::vector<float> acc_lse(static_cast<size_t>(n_lse), -std::numeric_limits<float>::infinity());
  for (auto [begin, len, s, i] : order) {
    const float* p = all.data() + static_cast<size_t>(s) * parts.size() + i * n_part;
    merge_into(acc_out.data(), acc_lse.data(), p, p + n_out, B, n_q, H, Dv);
  }
  store_rows(acc_out.data(), out, 0, n_q);
  if (!lse.empty()) std::copy(acc_lse.begin(), acc_lse.end(), lse.begin());
}

}  // namespace qkv
