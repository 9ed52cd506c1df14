// Context parallelism in the decoder's forward pass (model/context_parallel.h).
#include "model/context_parallel.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "distributed/block.h"
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

// Rows of probabilities assembled per round on rank 0: [rows, n_kv] floats, and as many again in
// its receive buffer, about 4 MiB each whatever the context (the capture's own scratch is as big).
constexpr int64_t kRoundFloats = int64_t(1) << 20;

// What rank 0's observer asks of one layer (Observer::attention_rows), the same on every rank:
// positions ascending within the call's rows, heads ascending.
struct RowsRequest {
  std::vector<int64_t> positions;
  std::vector<int> heads;
};

RowsRequest request_rows(ContextParallel& cp, Observer* observer, int layer, int64_t first,
                         int64_t n_q, int64_t n_head) {
  Communicator& comm = *cp.comm;
  // supported, positions, heads, the first head out of range (-1: none)
  int64_t head[4] = {1, 0, 0, -1};
  RowsRequest r;
  if (comm.rank() == 0) {
    AttentionRowsRequest ask;
    if (!observer || !observer->attention_rows(layer, first, n_q, ask)) {
      head[0] = 0;
    } else {
      for (int64_t p : ask.positions) {
        if (p >= first && p < first + n_q) r.positions.push_back(p);
      }
      std::sort(r.positions.begin(), r.positions.end());
      r.positions.erase(std::unique(r.positions.begin(), r.positions.end()), r.positions.end());
      for (int h : ask.heads) {
        if (h < 0 || h >= n_head) {
          head[3] = h;
          break;
        }
        r.heads.push_back(h);
      }
      std::sort(r.heads.begin(), r.heads.end());
      r.heads.erase(std::unique(r.heads.begin(), r.heads.end()), r.heads.end());
      head[1] = static_cast<int64_t>(r.positions.size());
      head[2] = static_cast<int64_t>(r.heads.size());
    }
  }
  // Every rank learns the outcome before any throws, so that none waits for the others.
  comm.broadcast(head, sizeof head, 0);
  if (head[0] == 0) {
    core::throw_invalid("context parallel: the observer of layer ", layer,
                        " wants q, k and v (Observer::on_attention), which no rank holds all of; ",
                        "ask for probability rows with Observer::attention_rows");
  }
  if (head[3] >= 0) {
    core::throw_invalid("context parallel: the observer asked for head ", head[3], " of layer ",
                        layer, "; the model has ", n_head, " heads (0..", n_head - 1, ")");
  }
  r.positions.resize(static_cast<size_t>(head[1]));
  r.heads.resize(static_cast<size_t>(head[2]));
  comm.broadcast(r.positions.data(), head[1] * 8, 0);
  comm.broadcast(r.heads.data(), head[2] * 4, 0);
  if (comm.rank() != 0) cp.observer_bytes_received += sizeof head + head[1] * 8 + head[2] * 4;
  return r;
}

// This rank's rows of the call: q [rows, n_head, head_dim] dense, lse [n_head, rows] global.
struct LocalRows {
  const float* q;
  int64_t n_head, head_dim;
  std::span<const float> lse;
};

// Query row j of a round (its q [head_dim] and lse for one head) for every rank. A decode step's
// rows are on every rank already; the prefill's are spread like the keys, so each rank sends the
// requested rows it holds ([max rows of a rank, head_dim + 1], padded) to all.
void round_queries(ContextParallel& cp, const Plan& plan, const LocalRows& in, int64_t h,
                   std::span<const int64_t> pos, int64_t first, float* qx, float* lx) {
  const int64_t hd = in.head_dim, n_local = plan.rows();
  const auto nc = static_cast<int64_t>(pos.size());
  if (!plan.prefill) {
    for (int64_t j = 0; j < nc; ++j) {
      const int64_t i = pos[j] - first;
      std::memcpy(qx + j * hd, in.q + (i * in.n_head + h) * hd, static_cast<size_t>(hd) * 4);
      lx[j] = in.lse[static_cast<size_t>(h * n_local + i)];
    }
    return;
  }
  Communicator& comm = *cp.comm;
  const int P = comm.size(), me = comm.rank();
  // The prefill's rows of rank r are its ranges (global positions = call rows), in order.
  const auto holder = [&](int64_t p, int64_t& local) {
    for (int r = 0; r < P; ++r) {
      int64_t row = 0;
      for (const KeyRange& k : plan.ranges_after[static_cast<size_t>(r)]) {
        if (p >= k.begin && p < k.begin + k.len) {
          local = row + p - k.begin;
          return r;
        }
        row += k.len;
      }
    }
    return -1;
  };
  std::vector<int> owner(static_cast<size_t>(nc));
  std::vector<int64_t> local(static_cast<size_t>(nc)), count(static_cast<size_t>(P), 0);
  for (int64_t j = 0; j < nc; ++j) {
    owner[j] = holder(pos[j] - first, local[j]);
    ++count[static_cast<size_t>(owner[j])];
  }
  const int64_t most = *std::max_element(count.begin(), count.end()), w = hd + 1;
  std::vector<float> mine(static_cast<size_t>(most * w), 0.f),
      all(static_cast<size_t>(P) * mine.size());
  int64_t k = 0;
  for (int64_t j = 0; j < nc; ++j) {
    if (owner[j] != me) continue;
    std::memcpy(&mine[k * w], in.q + (local[j] * in.n_head + h) * hd, static_cast<size_t>(hd) * 4);
    mine[k * w + hd] = in.lse[static_cast<size_t>(h * n_local + local[j])];
    ++k;
  }
  comm.allgather(mine.data(), all.data(), most * w * 4);
  cp.observer_bytes_received += (P - 1) * most * w * 4;
  std::vector<int64_t> taken(static_cast<size_t>(P), 0);
  for (int64_t j = 0; j < nc; ++j) {
    const auto r = static_cast<size_t>(owner[j]);
    const float* src = all.data() + r * mine.size() + taken[r]++ * w;
    std::memcpy(qx + j * hd, src, static_cast<size_t>(hd) * 4);
    lx[j] = src[hd];
  }
}

// The keys of range k that a query at position p can see under the layer's interval rules
// (causal, windows, kv_lengths): [begin, begin + len), len 0 when none. Every other key of the
// range gets probability exactly 0, so only these travel. With an explicit mask any key may be
// masked: the whole range.
KeyRange live_keys(const AttentionOptions& o, int64_t p, const KeyRange& k) {
  int64_t lo = k.begin, hi = k.begin + k.len;
  if (o.mask.kind == MaskKind::none) {
    if (o.causal) hi = std::min(hi, p + 1);
    if (o.window_right >= 0) hi = std::min(hi, p + o.window_right + 1);
    if (o.window_left >= 0) lo = std::max(lo, p - o.window_left);
    if (!o.kv_lengths.empty()) hi = std::min<int64_t>(hi, o.kv_lengths[0]);
  }
  return {lo, std::max<int64_t>(0, hi - lo)};
}

// The watched layer's attention as rank 0's observer asked for it: for each head and round of
// rows, every rank computes their probabilities against its own keys (its ranges, at their
// global positions, under the layer's masks) from the rows' global log-sum-exp, and sends rank 0
// the keys each row can see (live_keys: under a causal mask about half of them); rank 0 lays
// them out as whole rows and hands them to the observer. Rank 0 receives these probabilities
// and, at the prefill, the requested rows' q and lse of one head (head_dim + 1 floats a row);
// never a key or value.
void send_rows(ContextParallel& cp, const Plan& plan, const RowsRequest& req, const LocalRows& in,
               KvCache& cache, int layer, const AttentionOptions& opt, Observer* observer) {
  Communicator& comm = *cp.comm;
  const int me = comm.rank(), P = comm.size();
  const int64_t hd = in.head_dim, n_q = plan.n_tokens, n_kv = cp.n_past + n_q;
  const int64_t first = n_kv - n_q, n_head_kv = cache.k_row() / hd;
  const int64_t group = in.n_head / n_head_kv;
  const auto& ranges = plan.ranges_after;
  const auto& mine = ranges[static_cast<size_t>(me)];
  int64_t held = 0, longest = 0;
  for (const KeyRange& k : mine) {
    held += k.len;
    longest = std::max(longest, k.len);
  }
  const auto R = static_cast<int64_t>(req.positions.size());
  const int64_t per_round = std::max<int64_t>(1, kRoundFloats / n_kv);
  const int64_t most = std::min(R, per_round);
  std::vector<float> qx(static_cast<size_t>(most * hd)), lx(static_cast<size_t>(most));
  std::vector<float> block(static_cast<size_t>(most * longest));  // [rows, keys of one range]
  std::vector<float> send;  // the rows' live keys, range by range, row by row
  send.reserve(static_cast<size_t>(most * held));
  std::vector<float> staged, rows;  // rank 0: at most [rows, n_kv] each
  if (me == 0) {
    staged.resize(static_cast<size_t>(most * n_kv));
    rows.resize(static_cast<size_t>(most * n_kv));
  }
  const std::vector<int64_t> q_pos0{first};
  std::vector<int64_t> iota, bytes(static_cast<size_t>(P));
  for (int h : req.heads) {
    // One query head against its KV group's head: views of one head, so the ALiBi slope too.
    AttentionOptions o = opt;
    if (!opt.alibi_slopes.empty()) o.alibi_slopes = opt.alibi_slopes.subspan(h, 1);
    View4 kv = View4::dense(cache.k(layer), cache.dtype(), {1, held, n_head_kv, hd});
    kv.data = static_cast<const char*>(kv.data) + dtype_bytes(cache.dtype(), (h / group) * hd);
    kv.shape[2] = 1;
    for (int64_t r0 = 0; r0 < R; r0 += per_round) {
      const int64_t nc = std::min(per_round, R - r0);
      const std::span<const int64_t> pos(req.positions.data() + r0, static_cast<size_t>(nc));
      round_queries(cp, plan, in, h, pos, first, qx.data(), lx.data());
      send.clear();
      int64_t row0 = 0;  // the range's first cache row
      for (const KeyRange& k : mine) {
        for (int64_t j0 = 0; j0 < nc;) {  // runs of consecutive positions
          int64_t j1 = j0 + 1;
          while (j1 < nc && pos[j1] == pos[j1 - 1] + 1) ++j1;
          const int64_t run = j1 - j0;
          const distributed::BlockOptions bo(o, q_pos0, pos[j0] - first, run, k.begin, k.len);
          if (!bo.empty) {
            iota.resize(static_cast<size_t>(run));
            std::iota(iota.begin(), iota.end(), int64_t{0});
            attention_probs(View4::dense(qx.data() + j0 * hd, DType::f32, {1, run, 1, hd}),
                            distributed::rows(kv, row0, k.len),
                            std::span<const float>(lx.data() + j0, static_cast<size_t>(run)), 0, 0,
                            iota, block.data() + j0 * k.len, bo.opt);
          }
          for (int64_t j = j0; j < j1; ++j) {
            const KeyRange live = live_keys(o, pos[j], k);
            const float* p = block.data() + j * k.len + (live.begin - k.begin);
            send.insert(send.end(), p, p + live.len);
          }
          j0 = j1;
        }
        row0 += k.len;
      }
      // What each rank sends, known to all (the gather wants every rank's size).
      for (int r = 0; r < P; ++r) {
        int64_t n = 0;
        for (const KeyRange& k : ranges[static_cast<size_t>(r)]) {
          for (int64_t p : pos) n += live_keys(o, p, k).len;
        }
        bytes[static_cast<size_t>(r)] = n * 4;
      }
      comm.gather(send.data(), staged.data(), bytes, 0);
      if (me != 0) continue;
      // staged: rank by rank, range by range, row by row, the live keys; to rows [nc, n_kv].
      std::fill_n(rows.begin(), nc * n_kv, 0.f);
      const float* src = staged.data();
      for (const auto& list : ranges) {
        for (const KeyRange& k : list) {
          for (int64_t j = 0; j < nc; ++j) {
            const KeyRange live = live_keys(o, pos[j], k);
            std::copy_n(src, live.len, rows.data() + j * n_kv + live.begin);
            src += live.len;
          }
        }
      }
      cp.observer_bytes_received += std::accumulate(bytes.begin() + 1, bytes.end(), int64_t{0});
      AttentionRowsEvent e;
      e.layer = layer;
      e.head = h;
      e.n_kv = n_kv;
      e.positions = pos;
      e.probs = rows.data();
      observer->on_attention_rows(e);
    }
  }
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
  // [n_layer] whether each layer is watched, then whether the observer wants edits.
  std::vector<char> w(static_cast<size_t>(n_layer) + 1, 0);
  if (cp.comm->rank() == 0 && observer) {
    for (int l = 0; l < n_layer; ++l) w[static_cast<size_t>(l)] = observer->wants_attention(l);
    w.back() = observer->wants_edits();
  }
  cp.comm->broadcast(w.data(), n_layer + 1, 0);
  if (w.back()) {
    core::throw_invalid("context parallel: the observer wants to edit activations ",
                        "(Observer::wants_edits: ablation, patching), which a pass split over ",
                        "the ranks does not offer; run the edited passes in one process");
  }
  w.pop_back();
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
  if (watch) {
    const int64_t n_q = plan.n_tokens;
    const RowsRequest req = request_rows(cp, observer, layer, n_kv - n_q, n_q, n_head);
    if (!req.positions.empty() && !req.heads.empty()) {
      send_rows(cp, plan, req, {q, n_head, head_dim, lse}, cache, layer, opt, observer);
    }
  }
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
