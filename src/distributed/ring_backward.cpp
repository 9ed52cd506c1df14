// Ring attention backward (include/qkv/distributed.h). The K/V blocks go around the ring as in
// the forward; each block's dK/dV accumulator follows it one hop behind: at step t rank r
// computes the block's gradient from its own queries (attention_backward with the forward's
// global out and lse, which makes the block's probabilities and D = rowsum(dout * out) exact),
// adds the sum received from r - 1 (posted before the compute, so the transfer overlaps it) and
// sends the new sum on to r + 1. After P steps each block's full sum arrives at its owner.
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.h"
#include "distributed/block.h"
#include "distributed/ring.h"
#include "distributed/transport.h"

namespace qkv {

void ring_attention_backward(Communicator& comm, const View4& q, const View4& k, const View4& v,
                             const View4& out, std::span<const float> lse, const View4& dout,
                             const MutView4& dq, const MutView4& dk, const MutView4& dv,
                             int64_t n_seq, const AttentionOptions& options, RingStats* stats) {
  using namespace distributed;
  const double t_begin = now_s();
  const RingProblem rp(comm, "ring_attention_backward", q, k, v, n_seq, options);
  const int64_t n_local = rp.me.n_local();
  const int64_t B = rp.batch, H = rp.n_head, Hk = rp.n_head_kv, D = rp.head_dim, Dv = rp.head_dim_v;
  if (k.dtype != DType::f32) {
    core::throw_invalid("ring_attention_backward: k and v must be f32, got ", dtype_name(k.dtype));
  }
  if (static_cast<int64_t>(lse.size()) != B * H * n_local) {
    core::throw_invalid("ring_attention_backward: lse has ", lse.size(),
                        " values, expected batch * n_head * n_local = ", B * H * n_local);
  }
  auto check_shape = [&](const char* name, const std::array<int64_t, 4>& s, int64_t heads,
                         int64_t dim) {
    if (s != std::array<int64_t, 4>{B, n_local, heads, dim}) {
      core::throw_invalid("ring_attention_backward: ", name, " has shape [", s[0], ", ", s[1], ", ",
                          s[2], ", ", s[3], "], expected [", B, ", ", n_local, ", ", heads, ", ",
                          dim, "]");
    }
  };
  check_shape("out", out.shape, H, Dv);
  check_shape("dout", dout.shape, H, Dv);
  check_shape("dq", dq.shape, H, D);
  check_shape("dk", dk.shape, Hk, D);
  check_shape("dv", dv.shape, Hk, Dv);
  const int P = rp.n_ranks, r = rp.rank;
  const int next = (r + 1) % P, prev = (r - 1 + P) % P;
  RingStats st;

  int64_t max_n = 0;
  for (int s = 0; s < P; ++s) max_n = std::max(max_n, zigzag_shard(n_seq, s, P).n_local());
  auto grad_floats = [&](int src) {
    return B * zigzag_shard(n_seq, src, P).n_local() * Hk * (D + Dv);
  };
  int64_t max_bytes = 0;
  for (int s = 0; s < P; ++s) max_bytes = std::max(max_bytes, rp.kv_bytes(s, k.dtype));
  std::vector<char> buf[2];
  for (auto& b : buf) b.resize(static_cast<size_t>(max_bytes));
  {
    const int64_t kb = pack(k, buf[0].data());
    pack(v, buf[0].data() + kb);
  }
  // The gradient sums: the one received for the current block, and two for sending (one may
  // still be in flight while the next is filled). Layout: dk [B, n, Hk, D] then dv [B, n, Hk, Dv].
  const size_t grad_max = static_cast<size_t>(B * max_n * Hk * (D + Dv));
  std::vector<float> grad_in(grad_max), grad_out[2];
  grad_out[0].resize(grad_max);
  grad_out[1].resize(grad_max);

  // This rank's query chunks: lse dense per chunk [B, H, len]; dq sums [B, len, H, D].
  std::vector<float> lse_c[2], dq_acc[2];
  for (int c = 0; c < 2; ++c) {
    const int64_t len = rp.me.len[c], t0 = c == 0 ? 0 : rp.me.len[0];
    lse_c[c].resize(static_cast<size_t>(B * H * len));
    for (int64_t bh = 0; bh < B * H && len > 0; ++bh) {
      std::memcpy(lse_c[c].data() + bh * len, lse.data() + bh * n_local + t0,
                  static_cast<size_t>(len) * 4);
    }
    dq_acc[c].assign(static_cast<size_t>(B * len * H * D), 0.f);
  }
  const int64_t max_len = std::max(rp.me.len[0], rp.me.len[1]);
  std::vector<float> dq_part(static_cast<size_t>(B * max_len * H * D));
  std::vector<float> dk_part(static_cast<size_t>(B * max_n * Hk * D));
  std::vector<float> dv_part(static_cast<size_t>(B * max_n * Hk * Dv));

  int cur = 0;
  std::unique_ptr<Exchange> sends[2];
  for (int t = 0; t < P; ++t) {
    const int src = ((r - t) % P + P) % P;
    const ZigZagShard blk = zigzag_shard(n_seq, src, P);
    const int64_t nb = blk.n_local();
    Exchange kv(comm, /*link=*/true), gin(comm, /*link=*/true);
    if (t + 1 < P) {
      const int next_src = ((r - t - 1) % P + P) % P;
      kv.add_send(buf[cur].data(), rp.kv_bytes(src, k.dtype), next, kTagKv);
      kv.add_recv(buf[1 - cur].data(), rp.kv_bytes(next_src, k.dtype), prev, kTagKv);
      kv.start();
      st.bytes_sent += rp.kv_bytes(src, k.dtype);
    }
    if (t > 0) {
      gin.add_recv(grad_in.data(), grad_floats(src) * 4, prev, kTagGrad);
      gin.start();
    }
    const double t0 = now_s();
    float* g = grad_out[t % 2].data();
    // grad_out[t % 2] was last sent at step t - 2; that send must be done before refilling it.
    if (sends[t % 2]) st.wait_s += sends[t % 2]->finish();
    std::fill(g, g + grad_floats(src), 0.f);
    float* gk = g;                    // [B, nb, Hk, D]
    float* gv = g + B * nb * Hk * D;  // [B, nb, Hk, Dv]
    const View4 kb = View4::dense(buf[cur].data(), k.dtype, {B, nb, Hk, D});
    const View4 vb = View4::dense(buf[cur].data() + packed_bytes(kb), k.dtype, {B, nb, Hk, Dv});
    for (int qc = 0; qc < 2; ++qc) {
      const int64_t ql = rp.me.len[qc], q0 = qc == 0 ? 0 : rp.me.len[0];
      if (ql == 0) continue;
      for (int kc = 0; kc < 2; ++kc) {
        const int64_t kl = blk.len[kc], k0 = kc == 0 ? 0 : blk.len[0];
        if (kl == 0) continue;
        const BlockOptions bo(options, rp.q_pos0, rp.me.begin[qc], ql, blk.begin[kc], kl);
        if (bo.empty) continue;
        attention_backward(rows(q, q0, ql), rows(kb, k0, kl), rows(vb, k0, kl), rows(out, q0, ql),
                           lse_c[qc], rows(dout, q0, ql),
                           MutView4::dense(dq_part.data(), {B, ql, H, D}),
                           MutView4::dense(dk_part.data(), {B, kl, Hk, D}),
                           MutView4::dense(dv_part.data(), {B, kl, Hk, Dv}), bo.opt);
        for (size_t i = 0; i < static_cast<size_t>(B * ql * H * D); ++i) {
          dq_acc[qc][i] += dq_part[i];
        }
        for (int64_t b = 0; b < B; ++b) {
          float* dkr = gk + (b * nb + k0) * Hk * D;
          const float* dkp = dk_part.data() + b * kl * Hk * D;
          for (int64_t i = 0; i < kl * Hk * D; ++i) dkr[i] += dkp[i];
          float* dvr = gv + (b * nb + k0) * Hk * Dv;
          const float* dvp = dv_part.data() + b * kl * Hk * Dv;
          for (int64_t i = 0; i < kl * Hk * Dv; ++i) dvr[i] += dvp[i];
        }
      }
    }
    st.compute_s += now_s() - t0;
    if (gin.active()) {
      st.wait_s += gin.finish();
      st.comm_s += gin.transfer_s();
      // The ranks before this one in the block's trip come first in the sum.
      for (int64_t i = 0; i < grad_floats(src); ++i) g[i] = grad_in[i] + g[i];
    }
    if (P > 1) {
      sends[t % 2] = std::make_unique<Exchange>(comm, /*link=*/true);
      sends[t % 2]->add_send(g, grad_floats(src) * 4, next, kTagGrad);
      sends[t % 2]->start();
    }
    if (kv.active()) {
      st.wait_s += kv.finish();
      st.comm_s += kv.transfer_s();
      ++st.steps;
    }
    cur = 1 - cur;
  }
  // This rank's own block comes home with every rank's share.
  const float* own = grad_out[(P - 1) % 2].data();
  if (P > 1) {
    Exchange home(comm, /*link=*/true);
    home.add_recv(grad_in.data(), grad_floats(r) * 4, prev, kTagGrad);
    home.start();
    st.wait_s += home.finish();
    st.comm_s += home.transfer_s();
    own = grad_in.data();
  }
  for (auto& s : sends) {
    if (s) st.wait_s += s->finish();
  }
  store_rows(own, dk, 0, n_local);
  store_rows(own + B * n_local * Hk * D, dv, 0, n_local);
  for (int c = 0; c < 2; ++c) {
    store_rows(dq_acc[c].data(), dq, c == 0 ? 0 : rp.me.len[0], rp.me.len[c]);
  }
  st.total_s = now_s() - t_begin;
  if (stats) *stats = st;
}

}  // namespace qkv
