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
  using namespace distributed;
  const int64_t B = q.shape[0], n_q = q.shape[1], H = q.shape[2], Dv = v.shape[3];
  const int64_t n_shard = k.shape[1];
  if (k.dtype == DType::q8_0 || v.dtype == DType::q8_0) {
    core::throw_invalid(
        "sharded_decode_attention: k/v dtype q8_0 is not supported; pass f32, "
        "f16 or bf16");
  }
  if (out.shape != std::array<int64_t, 4>{B, n_q, H, Dv}) {
    core::throw_invalid("sharded_decode_attention: out has shape [", out.shape[0], ", ",
                        out.shape[1], ", ", out.shape[2], ", ", out.shape[3], "], expected [", B,
                        ", ", n_q, ", ", H, ", ", Dv, "]");
  }
  if (!lse.empty() && static_cast<int64_t>(lse.size()) != B * H * n_q) {
    core::throw_invalid("sharded_decode_attention: lse has ", lse.size(),
                        " values, expected batch * n_head * n_q = ", B * H * n_q);
  }
  if (shard_begin < 0 || n_shard < 0 || shard_begin + n_shard > n_kv) {
    core::throw_invalid("sharded_decode_attention: rank ", comm.rank(), "'s shard [", shard_begin,
                        ", ", shard_begin + n_shard, ") is outside the n_kv = ", n_kv, " keys");
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
  // The shards must tile [0, n_kv): every key counted once.
  const int P = comm.size();
  const int64_t mine[2] = {shard_begin, n_shard};
  std::vector<int64_t> shards(static_cast<size_t>(2 * P));
  comm.allgather(mine, shards.data(), sizeof(mine));
  // The ranks in the order of their keys (empty shards first where they start).
  std::vector<std::array<int64_t, 3>> order;  // begin, length, rank
  for (int s = 0; s < P; ++s) order.push_back({shards[2 * s], shards[2 * s + 1], s});
  std::sort(order.begin(), order.end());
  {
    int64_t at = 0;
    for (auto [begin, len, s] : order) {
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

  // This rank's (out, lse): [B, n_q, H, Dv] then [B, H, n_q].
  const int64_t n_out = B * n_q * H * Dv, n_lse = B * H * n_q;
  std::vector<float> part(static_cast<size_t>(n_out + n_lse), 0.f);
  std::fill(part.begin() + n_out, part.end(), -std::numeric_limits<float>::infinity());
  const std::vector<int64_t> pos0 = query_positions(options, B, n_q, n_kv);
  if (n_shard > 0 && n_q > 0) {
    const BlockOptions bo(options, pos0, 0, n_q, shard_begin, n_shard);
    if (!bo.empty) {
      attention(q, k, v, MutView4::dense(part.data(), {B, n_q, H, Dv}),
                std::span<float>(part.data() + n_out, static_cast<size_t>(n_lse)), bo.opt);
    }
  }
  std::vector<float> all(static_cast<size_t>(P) * part.size());
  comm.allgather(part.data(), all.data(), static_cast<int64_t>(part.size() * sizeof(float)));
  // Merged in the order of the keys (the shards' order), as one call over all keys would sum.
  std::vector<float> acc_out(static_cast<size_t>(n_out), 0.f);
  std::vector<float> acc_lse(static_cast<size_t>(n_lse), -std::numeric_limits<float>::infinity());
  for (auto [begin, len, s] : order) {
    const float* p = all.data() + static_cast<size_t>(s) * part.size();
    merge_into(acc_out.data(), acc_lse.data(), p, p + n_out, B, n_q, H, Dv);
  }
  store_rows(acc_out.data(), out, 0, n_q);
  if (!lse.empty()) std::copy(acc_lse.begin(), acc_lse.end(), lse.begin());
}

}  // namespace qkv
