// Ring attention forward (include/qkv/distributed.h). Step t of P: rank r holds the K/V block of
// rank (r - t) mod P; it posts the send of that block to r + 1 and the receive of the next from
// r - 1, runs the attention kernel for each of its two query chunks against each of the block's
// two key chunks (skipping pairs the masks empty: under a causal mask the zig-zag layout gives
// every rank the same number of live pairs), merges the partials by LSE and waits for the
// transfer. The kernel's own split-KV merge does the same within one call.
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "distributed/block.h"
#include "distributed/fingerprint.h"
#include "distributed/ring.h"
#include "distributed/transport.h"

namespace qkv {

namespace distributed {

RingProblem::RingProblem(Communicator& comm, const char* what, const View4& q, const View4& k,
                         const View4& v, int64_t n_seq, const AttentionOptions& options)
    : n_ranks(comm.size()), rank(comm.rank()), n_seq(n_seq) {
  if (n_seq < 0) core::throw_invalid(what, ": n_seq = ", n_seq, " is negative");
  check_blocks(what, k, v);
  me = zigzag_shard(n_seq, rank, n_ranks);
  batch = q.shape[0];
  n_head = q.shape[2];
  head_dim = q.shape[3];
  n_head_kv = k.shape[2];
  head_dim_v = v.shape[3];
  if (q.shape[1] != me.n_local() || k.shape[1] != me.n_local() || v.shape[1] != me.n_local()) {
    core::throw_invalid(what, ": rank ", rank, " of ", n_ranks, " holds ", me.n_local(),
                        " of the n_seq = ", n_seq, " tokens (zigzag_shard) but q has ", q.shape[1],
                        ", k ", k.shape[1], " and v ", v.shape[1]);
  }
  // Everything that must agree across the ranks, before any transfer.
  Fingerprint f;
  f.add("n_seq", n_seq);
  f.add("batch", batch);
  f.add("n_head", n_head);
  f.add("head_dim", head_dim);
  f.add("n_head_kv", n_head_kv);
  f.add("head_dim_v", head_dim_v);
  f.add("k dtype", static_cast<int64_t>(k.dtype));
  f.add("v dtype", static_cast<int64_t>(v.dtype));
  f.add_options(options, n_seq, n_seq);
  f.check(comm, what);
  if (options.mask.kind != MaskKind::none &&
      (options.mask.n_q != n_seq || options.mask.n_kv != n_seq)) {
    core::throw_invalid(what, ": the mask is [", options.mask.n_q, ", ", options.mask.n_kv,
                        "] but must be the whole [n_seq, n_seq] = [", n_seq, ", ", n_seq, "]");
  }
  q_pos0 = query_positions(options, batch, n_seq, n_seq);
}

int64_t RingProblem::kv_bytes(int src, DType dtype) const {
  const ZigZagShard s = zigzag_shard(n_seq, src, n_ranks);
  return batch * s.n_local() * n_head_kv *
         (dtype_bytes(dtype, head_dim) + dtype_bytes(dtype, head_dim_v));
}

}  // namespace distributed

void ring_attention(Communicator& comm, const View4& q, const View4& k, const View4& v,
                    const MutView4& out, std::span<float> lse, int64_t n_seq,
                    const AttentionOptions& options, RingStats* stats) {
  using namespace distributed;
  const double t_begin = now_s();
  const RingProblem rp(comm, "ring_attention", q, k, v, n_seq, options);
  const int64_t n_local = rp.me.n_local();
  const int64_t B = rp.batch, H = rp.n_head, Hk = rp.n_head_kv, D = rp.head_dim, Dv = rp.head_dim_v;
  if (out.shape != std::array<int64_t, 4>{B, n_local, H, Dv}) {
    core::throw_invalid("ring_attention: out has shape [", out.shape[0], ", ", out.shape[1], ", ",
                        out.shape[2], ", ", out.shape[3], "], expected [", B, ", ", n_local, ", ",
                        H, ", ", Dv, "]");
  }
  if (!lse.empty() && static_cast<int64_t>(lse.size()) != B * H * n_local) {
    core::throw_invalid("ring_attention: lse has ", lse.size(),
                        " values, expected batch * n_head * n_local = ", B * H * n_local);
  }
  const int P = rp.n_ranks, r = rp.rank;
  RingStats st;

  // Two K/V buffers: the block computed on and the one arriving. Block layout: k [B, n, Hk, D]
  // then v [B, n, Hk, Dv], dense, in k's dtype.
  int64_t max_bytes = 0;
  for (int s = 0; s < P; ++s) max_bytes = std::max(max_bytes, rp.kv_bytes(s, k.dtype));
  std::vector<char> buf[2];
  buf[0].resize(static_cast<size_t>(max_bytes));
  buf[1].resize(P > 1 ? static_cast<size_t>(max_bytes) : 0);
  {
    const int64_t kb = pack(k, buf[0].data());
    pack(v, buf[0].data() + kb);
  }

  // Accumulators per query chunk: out [B, len, H, Dv], lse [B, H, len]; the partial likewise.
  std::vector<float> acc_out[2], acc_lse[2];
  for (int c = 0; c < 2; ++c) {
    acc_out[c].assign(static_cast<size_t>(B * rp.me.len[c] * H * Dv), 0.f);
    acc_lse[c].assign(static_cast<size_t>(B * H * rp.me.len[c]),
                      -std::numeric_limits<float>::infinity());
  }
  const int64_t max_len = std::max(rp.me.len[0], rp.me.len[1]);
  std::vector<float> part_out(static_cast<size_t>(B * max_len * H * Dv));
  std::vector<float> part_lse(static_cast<size_t>(B * H * max_len));

  int cur = 0;
  for (int t = 0; t < P; ++t) {
    const int src = ((r - t) % P + P) % P;
    const ZigZagShard blk = zigzag_shard(n_seq, src, P);
    Exchange ex(comm, /*link=*/true);
    if (t + 1 < P) {
      const int next_src = ((r - t - 1) % P + P) % P;
      ex.add_send(buf[cur].data(), rp.kv_bytes(src, k.dtype), (r + 1) % P, kTagKv);
      ex.add_recv(buf[1 - cur].data(), rp.kv_bytes(next_src, k.dtype), (r - 1 + P) % P, kTagKv);
      ex.start();
      st.bytes_sent += rp.kv_bytes(src, k.dtype);
    }
    const double t0 = now_s();
    const View4 kb = View4::dense(buf[cur].data(), k.dtype, {B, blk.n_local(), Hk, D});
    const View4 vb =
        View4::dense(buf[cur].data() + packed_bytes(kb), k.dtype, {B, blk.n_local(), Hk, Dv});
    for (int qc = 0; qc < 2; ++qc) {
      const int64_t ql = rp.me.len[qc];
      if (ql == 0) continue;
      const View4 qv = rows(q, qc == 0 ? 0 : rp.me.len[0], ql);
      for (int kc = 0; kc < 2; ++kc) {
        const int64_t kl = blk.len[kc];
        if (kl == 0) continue;
        const BlockOptions bo(options, rp.q_pos0, rp.me.begin[qc], ql, blk.begin[kc], kl);
        if (bo.empty) continue;
        const int64_t k0 = kc == 0 ? 0 : blk.len[0];
        attention(qv, rows(kb, k0, kl), rows(vb, k0, kl),
                  MutView4::dense(part_out.data(), {B, ql, H, Dv}),
                  std::span<float>(part_lse.data(), static_cast<size_t>(B * H * ql)), bo.opt);
        merge_into(acc_out[qc].data(), acc_lse[qc].data(), part_out.data(), part_lse.data(), B, ql,
                   H, Dv);
      }
    }
    st.compute_s += now_s() - t0;
    if (ex.active()) {
      st.wait_s += ex.finish();
      st.comm_s += ex.transfer_s();
      ++st.steps;
    }
    cur = 1 - cur;
  }

  for (int c = 0; c < 2; ++c) {
    const int64_t len = rp.me.len[c];
    const int64_t t0 = c == 0 ? 0 : rp.me.len[0];
    store_rows(acc_out[c].data(), out, t0, len);
    if (!lse.empty() && len > 0) {
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t h = 0; h < H; ++h) {
          std::memcpy(lse.data() + (b * H + h) * n_local + t0,
                      acc_lse[c].data() + (b * H + h) * len, static_cast<size_t>(len) * 4);
        }
      }
    }
  }
  st.total_s = now_s() - t_begin;
  if (stats) *stats = st;
}

}  // namespace qkv
