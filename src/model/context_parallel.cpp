// Context parallelism in the decoder's forward pass (model/context_parallel.h).
#include "model/context_parallel.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "distributed/fingerprint.h"

namespace qkv::model {

void ContextParallel::reset() {
  n_past = 0;
  ranges.assign(static_cast<size_t>(comm->size()), {});
  run_owner = -1;
  run_taken = 0;
}

int64_t ContextParallel::held(int rank) const {
  int64_t n = 0;
  for (const KeyRange& r : ranges[static_cast<size_t>(rank)]) n += r.len;
  return n;
}

int64_t ContextParallel::local_capacity(int64_t n_ctx, int n_ranks) {
  return std::min(n_ctx, (n_ctx + n_ranks - 1) / n_ranks + kRun + 2);
}

namespace cp {
namespace {

int64_t count(const std::vector<KeyRange>& ranges) {
  int64_t n = 0;
  for (const KeyRange& r : ranges) n += r.len;
  return n;
}

// Copies rank-ordered rows (row_bytes each; rank r's rows in the order of its ranges) into
// global order: dst row p = the row of position p.
void scatter_rows(const char* src, const std::vector<std::vector<KeyRange>>& ranges,
                  int64_t row_bytes, char* dst) {
  for (const auto& list : ranges) {
    for (const KeyRange& r : list) {
      std::memcpy(dst + r.begin * row_bytes, src, static_cast<size_t>(r.len * row_bytes));
      src += r.len * row_bytes;
    }
  }
}

std::vector<int64_t> bytes_per_rank(const std::vector<std::vector<KeyRange>>& ranges,
                                    int64_t row_bytes) {
  std::vector<int64_t> b;
  for (const auto& list : ranges) b.push_back(count(list) * row_bytes);
  return b;
}

}  // namespace

int64_t Plan::rows() const {
  int64_t n = 0;
  for (const Piece& p : pieces) n += p.n;
  return n;
}

Plan plan(ContextParallel& cp, std::span<const int32_t> tokens, bool all_logits, int64_t capacity) {
  Communicator& comm = *cp.comm;
  const int P = comm.size(), me = comm.rank();
  const int64_t n = static_cast<int64_t>(tokens.size());
  // Every rank must run the same call: a rank given other tokens (another prompt, a sampler
  // seeded differently) would exchange blocks of the wrong sequence.
  distributed::Fingerprint f;
  f.add("tokens in the sequence so far", cp.n_past);
  f.add("new tokens", n);
  f.add_hash("the new tokens' ids", tokens.data(), static_cast<int64_t>(tokens.size_bytes()));
  f.add("all_logits", all_logits);
  f.check(comm, "context-parallel forward");

  Plan p;
  p.n_tokens = n;
  p.ranges_after = cp.ranges;
  if (cp.n_past == 0) {
    p.prefill = true;
    for (int r = 0; r < P; ++r) {
      const ZigZagShard s = zigzag_shard(n, r, P);
      auto& list = p.ranges_after[static_cast<size_t>(r)];
      list.clear();
      for (int c = 0; c < 2; ++c) {
        if (s.len[c] > 0) list.push_back({s.begin[c], s.len[c]});
      }
    }
    int64_t row = 0;
    for (const KeyRange& r : p.ranges_after[static_cast<size_t>(me)]) {
      p.pieces.push_back({r.begin, r.len, r.begin, row});
      row += r.len;
    }
  } else {
    if (cp.run_owner >= 0 && cp.run_taken + n <= ContextParallel::kRun) {
      p.owner = cp.run_owner;
    } else {
      p.owner = 0;
      for (int r = 1; r < P; ++r) {
        if (cp.held(r) < cp.held(p.owner)) p.owner = r;
      }
    }
    auto& list = p.ranges_after[static_cast<size_t>(p.owner)];
    if (!list.empty() && list.back().begin + list.back().len == cp.n_past) {
      list.back().len += n;
    } else {
      list.push_back({cp.n_past, n});
    }
    p.pieces.push_back({0, n, cp.n_past, me == p.owner ? cp.held(me) : -1});
  }
  const int64_t need = count(p.ranges_after[static_cast<size_t>(me)]);
  if (need > capacity) {
    core::throw_error("context parallel: rank ", me, " would hold ", need,
                      " tokens, more than its share of the KV cache (", capacity,
                      " rows); raise the context length");
  }
  return p;
}

void commit(ContextParallel& cp, Plan&& p) {
  if (p.prefill) {
    cp.run_owner = -1;
    cp.run_taken = 0;
  } else {
    if (p.owner != cp.run_owner) cp.run_taken = 0;
    cp.run_owner = p.owner;
    cp.run_taken += p.n_tokens;
  }
  cp.ranges = std::move(p.ranges_after);
  cp.n_past += p.n_tokens;
}

std::vector<char> watched_layers(ContextParallel& cp, Observer* observer, int n_layer) {
  std::vector<char> w(static_cast<size_t>(n_layer), 0);
  if (cp.comm->rank() == 0 && observer) {
    for (int l = 0; l < n_layer; ++l) w[static_cast<size_t>(l)] = observer->wants_attention(l);
  }
  cp.comm->broadcast(w.data(), n_layer, 0);
  return w;
}

void attention(ContextParallel& cp, const Plan& plan, const float* q, int64_t n_head,
               int64_t head_dim, KvCache& cache, int layer, const AttentionOptions& opt, float* out,
               bool watch, Observer* observer, std::vector<float>& lse_buf) {
  Communicator& comm = *cp.comm;
  const int me = comm.rank();
  const int64_t n = plan.rows(), nkv = cache.k_row() / head_dim;
  const auto& mine = plan.ranges_after[static_cast<size_t>(me)];
  const int64_t held = count(mine);
  const View4 qv = View4::dense(q, DType::f32, {1, n, n_head, head_dim});
  const View4 kv = View4::dense(cache.k(layer), cache.dtype(), {1, held, nkv, head_dim});
  const View4 vv = View4::dense(cache.v(layer), cache.dtype(), {1, held, nkv, head_dim});
  const MutView4 ov = MutView4::dense(out, {1, n, n_head, head_dim});
  if (static_cast<int64_t>(lse_buf.size()) < n_head * n) {
    lse_buf.resize(static_cast<size_t>(n_head * n));
  }
  const std::span<float> lse =
      watch ? std::span<float>(lse_buf.data(), static_cast<size_t>(n_head * n))
            : std::span<float>{};
  const int64_t n_kv = cp.n_past + plan.n_tokens;
  if (plan.prefill) {
    ring_attention(comm, qv, kv, vv, ov, lse, plan.n_tokens, opt);
  } else {
    sharded_decode_attention(comm, qv, kv, vv, ov, lse, std::span<const KeyRange>(mine), n_kv, opt);
  }
  if (!watch) return;

  // Rank 0's observer sees the call as one process would: every query row of the call against
  // every key, with the global log-sum-exp the ring or the reduction returned.
  const int64_t kv_row = dtype_bytes(cache.dtype(), cache.k_row());
  std::vector<char> k_all, v_all;
  if (me == 0) {
    k_all.resize(static_cast<size_t>(n_kv * kv_row));
    v_all.resize(static_cast<size_t>(n_kv * kv_row));
  }
  const std::vector<int64_t> kv_bytes = bytes_per_rank(plan.ranges_after, kv_row);
  std::vector<char> staged(me == 0 ? static_cast<size_t>(n_kv * kv_row) : 0);
  for (int which = 0; which < 2; ++which) {
    const std::byte* src = which == 0 ? cache.k(layer) : cache.v(layer);
    comm.gather(src, staged.data(), kv_bytes, 0);
    if (me == 0) {
      scatter_rows(staged.data(), plan.ranges_after, kv_row, (which == 0 ? k_all : v_all).data());
    }
  }
  // The query rows: the prefill's are spread like the keys; a decode step's are on every rank.
  std::vector<float> q_all, out_all, lse_all;
  const float* q_ev = q;
  const float* out_ev = out;
  std::span<const float> lse_ev = lse;
  if (plan.prefill) {
    const int64_t T = plan.n_tokens, w = n_head * head_dim;
    // lse [n_head, n] as rows [n, n_head], so that every array moves as rows of positions.
    std::vector<float> lse_rows(static_cast<size_t>(n * n_head));
    for (int64_t h = 0; h < n_head; ++h) {
      for (int64_t t = 0; t < n; ++t) lse_rows[t * n_head + h] = lse[h * n + t];
    }
    std::vector<float> lse_rows_all;
    if (me == 0) {
      q_all.resize(static_cast<size_t>(T * w));
      out_all.resize(static_cast<size_t>(T * w));
      lse_rows_all.resize(static_cast<size_t>(T * n_head));
    }
    const auto move = [&](const float* src, int64_t width, std::vector<float>& dst) {
      const int64_t row = width * 4;
      std::vector<char> buf(me == 0 ? static_cast<size_t>(T * row) : 0);
      comm.gather(src, buf.data(), bytes_per_rank(plan.ranges_after, row), 0);
      if (me == 0)
        scatter_rows(buf.data(), plan.ranges_after, row, reinterpret_cast<char*>(dst.data()));
    };
    move(q, w, q_all);
    move(out, w, out_all);
    move(lse_rows.data(), n_head, lse_rows_all);
    if (me != 0) return;
    lse_all.resize(static_cast<size_t>(n_head * T));
    for (int64_t h = 0; h < n_head; ++h) {
      for (int64_t t = 0; t < T; ++t) lse_all[h * T + t] = lse_rows_all[t * n_head + h];
    }
    q_ev = q_all.data();
    out_ev = out_all.data();
    lse_ev = lse_all;
  }
  if (me != 0 || !observer) return;
  const int64_t n_q = plan.n_tokens;
  AttentionEvent e;
  e.layer = layer;
  e.first_position = n_kv - n_q;
  e.q = View4::dense(q_ev, DType::f32, {1, n_q, n_head, head_dim});
  e.k = View4::dense(k_all.data(), cache.dtype(), {1, n_kv, nkv, head_dim});
  e.v = View4::dense(v_all.data(), cache.dtype(), {1, n_kv, nkv, head_dim});
  e.out = out_ev;
  e.lse = lse_ev;
  e.options = &opt;
  observer->on_attention(e);
}

int last_row_rank(const ContextParallel& cp, const Plan& plan) {
  if (!plan.prefill) return 0;  // every rank runs a decode step's rows
  const int64_t last = plan.n_tokens - 1;
  for (int r = 0; r < cp.comm->size(); ++r) {
    for (const KeyRange& k : plan.ranges_after[static_cast<size_t>(r)]) {
      if (last >= k.begin && last < k.begin + k.len) return r;
    }
  }
  return 0;
}

void share_logits(ContextParallel& cp, const Plan& plan, std::vector<float>& logits,
                  int64_t n_vocab, bool all_logits) {
  Communicator& comm = *cp.comm;
  const int me = comm.rank();
  if (!all_logits) {
    logits.resize(static_cast<size_t>(n_vocab));
    comm.broadcast(logits.data(), n_vocab * 4, last_row_rank(cp, plan));
    return;
  }
  if (!plan.prefill) {  // every rank computed every row: rank 0's are the answer
    if (me != 0) logits.clear();
    return;
  }
  const int64_t row = n_vocab * 4;
  std::vector<float> all(me == 0 ? static_cast<size_t>(plan.n_tokens * n_vocab) : 0);
  std::vector<char> buf(me == 0 ? static_cast<size_t>(plan.n_tokens * row) : 0);
  comm.gather(logits.data(), buf.data(), bytes_per_rank(plan.ranges_after, row), 0);
  if (me == 0)
    scatter_rows(buf.data(), plan.ranges_after, row, reinterpret_cast<char*>(all.data()));
  logits = std::move(all);
}

}  // namespace cp
}  // namespace qkv::model
