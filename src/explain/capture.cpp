// AttentionCapture: exact probability rows recomputed from the kernel's log-sum-exp, stored per
// (selected layer, selected head, query position) under a float budget.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <sstream>

#include "npy_stream.h"
#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv {

std::string_view overflow_keep_name(OverflowKeep k) {
  switch (k) {
    case OverflowKeep::rows:
      return "rows";
    case OverflowKeep::heads:
      return "heads";
    case OverflowKeep::top_k:
      return "top-k";
  }
  return "?";
}

// Named, not anonymous: AttentionCapture::Impl (external linkage) holds these as fields.
namespace capture_store {

// One stored probability row, in RowBlocks. Dense rows hold keys [0, len) (trailing zeros
// trimmed: a causal row ends at its own position); sparse rows hold p[t] for key keys[t].
struct Row {
  float* p = nullptr;  // null: not stored
  int32_t* keys = nullptr;
  int32_t len = 0;
  int32_t cap = 0;  // floats at p: a dense row of up to cap keys replacing this one reuses them
};

// Stored rows one after another in blocks that never move (core::Arena is one buffer that moves
// when it grows, which would invalidate the rows' pointers). A vector per row cost a malloc and a
// free-list walk for every (layer, head, step), scattered the rows over the heap, and its 56-byte
// handle missed the cache on each store (docs/PERFORMANCE.md, "Explain: cost of capturing").
class RowBlocks {
 public:
  // n 4-byte values (floats or key indices), uninitialised.
  template <class T>
  T* take(int64_t n) {
    static_assert(sizeof(T) == 4);
    if (n > kBlock / 4) {  // a long row gets a block of its own; the open block stays open
      big_.push_back(std::make_unique_for_overwrite<std::byte[]>(static_cast<size_t>(n) * 4));
      return reinterpret_cast<T*>(big_.back().get());
    }
    if (blocks_.empty() || used_ + n > kBlock) {
      blocks_.push_back(std::make_unique_for_overwrite<std::byte[]>(size_t(kBlock) * 4));
      used_ = 0;
    }
    T* out = reinterpret_cast<T*>(blocks_.back().get() + used_ * 4);
    used_ += n;
    return out;
  }
  void clear() {
    blocks_.clear();
    big_.clear();
    used_ = 0;
  }

 private:
  static constexpr int64_t kBlock = int64_t(1) << 18;  // values: 1 MiB
  std::vector<std::unique_ptr<std::byte[]>> blocks_, big_;
  int64_t used_ = 0;  // values used in blocks_.back()
};

}  // namespace capture_store

using capture_store::Row;
using capture_store::RowBlocks;

namespace {

// Element (t, h, d) of a [1, n, heads, dim] view (any dtype, a q8_0 cache too) as fp32.
float at(const View4& v, int64_t t, int64_t h, int64_t d) {
  return view_element(v, 0, t, h, d);
}

std::vector<int> select(const std::vector<int>& asked, int64_t n, const char* what) {
  std::vector<int> out;
  if (asked.empty()) {
    out.resize(static_cast<size_t>(n));
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  for (int x : asked) {
    if (x < 0 || x >= n) {
      throw InvalidArgument("explain: " + std::string(what) + " " + std::to_string(x) +
                            " is out of range; the model has " + std::to_string(n) + " " + what +
                            "s (0.." + std::to_string(n - 1) + ")");
    }
    out.push_back(x);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// Rows recomputed per attention_probs call: bounds the scratch buffer to about 4 MiB.
constexpr int64_t kScratchFloats = int64_t(1) << 20;

}  // namespace

struct AttentionCapture::Impl {
  CaptureOptions opt;
  int64_t n_layer = 0, n_head = 0;
  std::vector<int> layers, heads;
  std::vector<int> layer_slot;         // [n_layer] -> index in layers or -1
  std::vector<std::vector<Row>> rows;  // [layers * heads][position]
  RowBlocks blocks;
  // stored: values taken from `blocks` (a replaced row's space stays taken until clear()).
  int64_t n_tokens = 0, stored = 0, dropped = 0, sparse = 0;
  bool full = false;  // the budget was reached once: the overflow policy applies from then on
  std::optional<HeadDetail> detail;
  // Block summaries (CaptureOptions::block_size): per head, [query block][key block] sums of
  // the rows' mass, and the rows summed per query block.
  std::vector<std::vector<std::vector<double>>> block_sum;
  std::vector<std::vector<int64_t>> block_rows;
  void add_to_blocks(size_t slot, int64_t pos, const float* p, int64_t len);
  std::unique_ptr<explain_detail::NpyStream> stream;  // CaptureOptions::stream_npy
  std::optional<StreamedMaps> streamed;

  std::vector<Row>& slot(size_t li, size_t hi) { return rows[li * heads.size() + hi]; }
  const std::vector<Row>& slot(size_t li, size_t hi) const { return rows[li * heads.size() + hi]; }
  bool wanted_row(int64_t pos) const {
    return opt.rows.empty() || std::find(opt.rows.begin(), opt.rows.end(), pos) != opt.rows.end();
  }
  void store(std::vector<Row>& slot, int64_t pos, const float* p, int64_t len, size_t hi);
  // One probability row p [n_kv] of (selected layer li, selected head hi) at query `pos`: stored,
  // summed into the blocks and streamed.
  void take_row(size_t li, size_t hi, int64_t pos, const float* p, int64_t n_kv);
  void capture_detail(const AttentionEvent& e);
  // Scratch reused from event to event.
  std::vector<int64_t> wanted;  // query rows of an event to capture
  std::vector<float> probs;     // [rows of a chunk, n_kv]
  std::vector<int32_t> order;   // keys of a row, for top-k
};

// Dense while the budget allows; past it, the chosen overflow policy. p: the row's first len
// keys (the rest are zeros).
void AttentionCapture::Impl::store(std::vector<Row>& slot, int64_t pos, const float* p, int64_t len,
                                   size_t hi) {
  Row* old = pos < static_cast<int64_t>(slot.size()) ? &slot[static_cast<size_t>(pos)] : nullptr;
  if (old && old->p) {  // a position seen again (a new prompt after reset)
    if (len <= old->cap) {
      std::copy_n(p, len, old->p);  // dense, in its own space
      old->keys = nullptr;
      old->len = static_cast<int32_t>(len);
      return;
    }
    *old = Row{};
  }
  const bool fits_dense = stored + len <= opt.max_floats;
  if (!fits_dense) full = true;
  const bool keep_head =
      opt.overflow == OverflowKeep::heads && static_cast<int>(hi) < opt.overflow_heads;
  const bool dense = fits_dense && (!full || keep_head);
  const bool top = !dense && opt.overflow == OverflowKeep::top_k &&
                   stored + 2 * std::min<int64_t>(opt.top_k, len) <= opt.max_floats;
  if (!dense && !top) {
    ++dropped;
    return;
  }
  // Slots grow only for rows kept, so a capture that keeps nothing (a stream with max_floats 0)
  // holds no memory per position.
  if (static_cast<int64_t>(slot.size()) <= pos) slot.resize(static_cast<size_t>(pos + 1));
  Row& r = slot[static_cast<size_t>(pos)];
  if (dense) {
    r.p = blocks.take<float>(len);
    std::copy_n(p, len, r.p);
    r.len = r.cap = static_cast<int32_t>(len);
    stored += len;
    return;
  }
  order.resize(static_cast<size_t>(len));
  std::iota(order.begin(), order.end(), 0);
  const int64_t k = std::min<int64_t>(opt.top_k, len);
  // The k largest (ties: lower key), then in key order. nth_element is linear in the row length;
  // partial_sort costs a log k factor per key, which long rows (32k keys) pay on every step.
  std::nth_element(order.begin(), order.begin() + (k - 1), order.end(),
                   [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  std::sort(order.begin(), order.begin() + k);
  r.p = blocks.take<float>(k);
  r.keys = blocks.take<int32_t>(k);
  for (int64_t t = 0; t < k; ++t) {
    r.keys[t] = order[static_cast<size_t>(t)];
    r.p[t] = p[r.keys[t]];
  }
  r.len = static_cast<int32_t>(k);
  r.cap = 0;  // not reused: its keys would be lost
  stored += 2 * k;
  ++sparse;
}

void AttentionCapture::Impl::take_row(size_t li, size_t hi, int64_t pos, const float* p,
                                      int64_t n_kv) {
  int64_t len = n_kv;  // trailing zeros trimmed: a causal row ends at its own position
  while (len > 0 && p[len - 1] == 0.f) --len;
  store(slot(li, hi), pos, p, len, hi);
  if (opt.block_size > 0) add_to_blocks(li * heads.size() + hi, pos, p, len);
  if (stream) stream->write_row(static_cast<int>(li), static_cast<int>(hi), pos, p, len);
}

void AttentionCapture::Impl::add_to_blocks(size_t slot, int64_t pos, const float* p, int64_t len) {
  const int64_t b = opt.block_size;
  const auto qb = static_cast<size_t>(pos / b);
  std::vector<std::vector<double>>& sums = block_sum[slot];
  std::vector<int64_t>& rows_in = block_rows[slot];
  if (sums.size() <= qb) {
    sums.resize(qb + 1);
    rows_in.resize(qb + 1, 0);
  }
  std::vector<double>& row = sums[qb];
  const auto nkb = static_cast<size_t>((len + b - 1) / b);
  if (row.size() < nkb) row.resize(nkb, 0.0);
  for (int64_t j0 = 0; j0 < len; j0 += b) {
    double s = 0;
    for (int64_t j = j0; j < std::min(len, j0 + b); ++j) s += p[j];
    row[static_cast<size_t>(j0 / b)] += s;
  }
  ++rows_in[qb];
}

void AttentionCapture::Impl::capture_detail(const AttentionEvent& e) {
  const int64_t n_q = e.q.shape[1], n_kv = e.k.shape[1];
  const int64_t hd = e.q.shape[3], hd_v = e.v.shape[3];
  const int64_t group = e.q.shape[2] / e.k.shape[2];
  const int64_t h = opt.detail_head, hk = h / group;
  if (!detail) {
    detail.emplace();
    detail->layer = opt.detail_layer;
    detail->head = opt.detail_head;
    detail->head_dim = hd;
    detail->head_dim_v = hd_v;
  }
  HeadDetail& d = *detail;
  const auto grow = [](std::vector<float>& x, int64_t n) {
    if (static_cast<int64_t>(x.size()) < n) x.resize(static_cast<size_t>(n), 0.f);
  };
  grow(d.q, n_kv * hd);
  grow(d.out, n_kv * hd_v);
  grow(d.k, n_kv * hd);
  grow(d.v, n_kv * hd_v);
  for (int64_t i = 0; i < n_q; ++i) {
    const int64_t pos = e.first_position + i;
    for (int64_t c = 0; c < hd; ++c) d.q[static_cast<size_t>(pos * hd + c)] = at(e.q, i, h, c);
    const float* o = e.out + i * e.q.shape[2] * hd_v + h * hd_v;
    std::copy(o, o + hd_v, d.out.begin() + pos * hd_v);
  }
  for (int64_t j = 0; j < n_kv; ++j) {
    for (int64_t c = 0; c < hd; ++c) d.k[static_cast<size_t>(j * hd + c)] = at(e.k, j, hk, c);
    for (int64_t c = 0; c < hd_v; ++c) d.v[static_cast<size_t>(j * hd_v + c)] = at(e.v, j, hk, c);
  }
}

AttentionCapture::AttentionCapture(const Model& model, CaptureOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  const ModelConfig& c = model.config();
  m.n_layer = c.n_layer;
  m.n_head = c.n_head;
  m.layers = select(options.layers, c.n_layer, "layer");
  m.heads = select(options.heads, c.n_head, "head");
  if (options.max_floats < 0) throw InvalidArgument("explain: max_floats must be >= 0");
  if (options.block_size < 0) {
    throw InvalidArgument("explain: block_size must be >= 0 (0: no block summaries), got " +
                          std::to_string(options.block_size));
  }
  if (options.top_k < 1) {
    throw InvalidArgument("explain: top_k must be >= 1, got " + std::to_string(options.top_k));
  }
  if ((options.detail_layer >= 0) != (options.detail_head >= 0)) {
    throw InvalidArgument("explain: give both detail_layer and detail_head (or neither)");
  }
  if (options.detail_layer >= c.n_layer || options.detail_head >= c.n_head) {
    throw InvalidArgument("explain: detail head (layer " + std::to_string(options.detail_layer) +
                          ", head " + std::to_string(options.detail_head) +
                          ") is out of range; the model has " + std::to_string(c.n_layer) +
                          " layers of " + std::to_string(c.n_head) + " heads");
  }
  m.opt = std::move(options);
  m.layer_slot.assign(static_cast<size_t>(c.n_layer), -1);
  for (size_t i = 0; i < m.layers.size(); ++i)
    m.layer_slot[static_cast<size_t>(m.layers[i])] = static_cast<int>(i);
  m.rows.resize(m.layers.size() * m.heads.size());
  if (m.opt.block_size > 0) {
    m.block_sum.resize(m.rows.size());
    m.block_rows.resize(m.rows.size());
  }
  if (!m.opt.stream_npy.empty())
    m.stream = std::make_unique<explain_detail::NpyStream>(m.opt.stream_npy);
}

AttentionCapture::~AttentionCapture() = default;
AttentionCapture::AttentionCapture(AttentionCapture&&) noexcept = default;
AttentionCapture& AttentionCapture::operator=(AttentionCapture&&) noexcept = default;

bool AttentionCapture::wants_attention(int layer) {
  const Impl& m = *impl_;
  if (layer < 0 || layer >= m.n_layer) return false;
  return m.layer_slot[static_cast<size_t>(layer)] >= 0 || layer == m.opt.detail_layer;
}

void AttentionCapture::on_attention(const AttentionEvent& e) {
  Impl& m = *impl_;
  if (e.layer < 0 || e.layer >= m.n_layer) return;
  if (e.layer == m.opt.detail_layer) m.capture_detail(e);
  const int li = m.layer_slot[static_cast<size_t>(e.layer)];
  if (li < 0) return;
  const int64_t n_q = e.q.shape[1], n_kv = e.k.shape[1];
  std::vector<int64_t>& wanted = m.wanted;  // query rows of this event to capture
  wanted.clear();
  for (int64_t i = 0; i < n_q; ++i) {
    if (m.wanted_row(e.first_position + i)) wanted.push_back(i);
  }
  if (wanted.empty()) return;
  m.n_tokens = std::max(m.n_tokens, e.first_position + wanted.back() + 1);
  const int64_t chunk = std::max<int64_t>(1, kScratchFloats / std::max<int64_t>(n_kv, 1));
  std::vector<float>& probs = m.probs;  // [rows of the chunk, n_kv]
  for (size_t hi = 0; hi < m.heads.size(); ++hi) {
    for (size_t r0 = 0; r0 < wanted.size(); r0 += static_cast<size_t>(chunk)) {
      const size_t nr = std::min(wanted.size() - r0, static_cast<size_t>(chunk));
      const std::span<const int64_t> rows(wanted.data() + r0, nr);
      probs.resize(nr * static_cast<size_t>(n_kv));
      attention_probs(e.q, e.k, e.lse, 0, m.heads[hi], rows, probs.data(), *e.options);
      for (size_t r = 0; r < nr; ++r) {
        m.take_row(static_cast<size_t>(li), hi, e.first_position + rows[r],
                   probs.data() + r * static_cast<size_t>(n_kv), n_kv);
      }
    }
  }
}

bool AttentionCapture::attention_rows(int layer, int64_t first_position, int64_t n_q,
                                      AttentionRowsRequest& request) {
  const Impl& m = *impl_;
  request = {};
  if (layer < 0 || layer >= m.n_layer) return true;
  if (layer == m.opt.detail_layer) return false;
  if (m.layer_slot[static_cast<size_t>(layer)] < 0) return true;
  for (int64_t i = 0; i < n_q; ++i) {
    if (m.wanted_row(first_position + i)) request.positions.push_back(first_position + i);
  }
  request.heads = m.heads;
  return true;
}

void AttentionCapture::on_attention_rows(const AttentionRowsEvent& e) {
  Impl& m = *impl_;
  if (e.layer < 0 || e.layer >= m.n_layer) return;
  const int li = m.layer_slot[static_cast<size_t>(e.layer)];
  const auto h = std::lower_bound(m.heads.begin(), m.heads.end(), e.head);
  if (li < 0 || h == m.heads.end() || *h != e.head) return;
  const auto hi = static_cast<size_t>(h - m.heads.begin());
  for (size_t r = 0; r < e.positions.size(); ++r) {
    const int64_t pos = e.positions[r];
    if (!m.wanted_row(pos)) continue;
    m.n_tokens = std::max(m.n_tokens, pos + 1);
    m.take_row(static_cast<size_t>(li), hi, pos, e.probs + r * static_cast<size_t>(e.n_kv), e.n_kv);
  }
}

const CaptureOptions& AttentionCapture::options() const {
  return impl_->opt;
}
const std::vector<int>& AttentionCapture::layers() const {
  return impl_->layers;
}
const std::vector<int>& AttentionCapture::heads() const {
  return impl_->heads;
}
int64_t AttentionCapture::n_tokens() const {
  return impl_->n_tokens;
}

std::vector<float> AttentionCapture::map(size_t li, size_t hi, int64_t n) const {
  const Impl& m = *impl_;
  if (li >= m.layers.size() || hi >= m.heads.size()) {
    throw InvalidArgument("explain: map(" + std::to_string(li) + ", " + std::to_string(hi) +
                          ") is out of range; " + std::to_string(m.layers.size()) + " layers and " +
                          std::to_string(m.heads.size()) + " heads were selected");
  }
  if (n < 0) n = m.n_tokens;
  std::vector<float> out(static_cast<size_t>(n * n), 0.f);
  const std::vector<Row>& slot = m.slot(li, hi);
  for (int64_t i = 0; i < std::min<int64_t>(n, static_cast<int64_t>(slot.size())); ++i) {
    const Row& r = slot[static_cast<size_t>(i)];
    float* dst = out.data() + i * n;
    if (!r.keys) {
      std::copy_n(r.p, std::min<int64_t>(n, r.len), dst);
    } else {
      for (int32_t t = 0; t < r.len; ++t) {
        if (r.keys[t] < n) dst[r.keys[t]] = r.p[t];
      }
    }
  }
  return out;
}

bool AttentionCapture::has_row(size_t li, size_t hi, int64_t pos) const {
  const Impl& m = *impl_;
  if (li >= m.layers.size() || hi >= m.heads.size() || pos < 0) return false;
  const std::vector<Row>& slot = m.slot(li, hi);
  return pos < static_cast<int64_t>(slot.size()) && slot[static_cast<size_t>(pos)].p != nullptr;
}

bool AttentionCapture::row_is_dense(size_t li, size_t hi, int64_t pos) const {
  return has_row(li, hi, pos) && !impl_->slot(li, hi)[static_cast<size_t>(pos)].keys;
}

bool AttentionCapture::row(size_t li, size_t hi, int64_t pos, std::vector<int32_t>& keys,
                           std::vector<float>& p) const {
  keys.clear();
  p.clear();
  if (!has_row(li, hi, pos)) return false;
  const Row& r = impl_->slot(li, hi)[static_cast<size_t>(pos)];
  p.assign(r.p, r.p + r.len);
  if (r.keys) {
    keys.assign(r.keys, r.keys + r.len);
  } else {
    keys.resize(static_cast<size_t>(r.len));
    std::iota(keys.begin(), keys.end(), 0);
  }
  return true;
}

std::vector<float> AttentionCapture::block_map(size_t li, size_t hi) const {
  const Impl& m = *impl_;
  if (m.opt.block_size <= 0 || li >= m.layers.size() || hi >= m.heads.size()) return {};
  const int64_t b = m.opt.block_size;
  const auto nb = static_cast<size_t>((m.n_tokens + b - 1) / b);
  const size_t slot = li * m.heads.size() + hi;
  std::vector<float> out(nb * nb, 0.f);
  const auto& sums = m.block_sum[slot];
  for (size_t i = 0; i < std::min(nb, sums.size()); ++i) {
    const int64_t rows = m.block_rows[slot][i];
    if (rows == 0) continue;
    for (size_t j = 0; j < std::min(nb, sums[i].size()); ++j)
      out[i * nb + j] = static_cast<float>(sums[i][j] / static_cast<double>(rows));
  }
  return out;
}

int64_t AttentionCapture::stored_floats() const {
  return impl_->stored;
}
int64_t AttentionCapture::dropped_rows() const {
  return impl_->dropped;
}
int64_t AttentionCapture::sparse_rows() const {
  return impl_->sparse;
}

std::string AttentionCapture::memory_note() const {
  const Impl& m = *impl_;
  std::ostringstream s;
  s << "attention capture: " << m.layers.size() << " layers x " << m.heads.size() << " heads, "
    << m.n_tokens << " tokens, " << m.stored << " floats stored (" << (m.stored * 4.0 / (1 << 20))
    << " MiB) of a budget of " << m.opt.max_floats;
  if (m.sparse > 0) {
    s << "; budget reached: " << m.sparse << " rows kept as their top " << m.opt.top_k << " keys";
  }
  if (m.dropped > 0) {
    s << "; budget reached: " << m.dropped << " rows dropped (overflow policy "
      << overflow_keep_name(m.opt.overflow);
    if (m.opt.overflow == OverflowKeep::heads)
      s << ", first " << m.opt.overflow_heads << " heads kept";
    s << ")";
  }
  if (m.stream) s << "; every row streamed to " << m.opt.stream_npy;
  return s.str();
}

const std::optional<HeadDetail>& AttentionCapture::detail() const {
  return impl_->detail;
}

std::optional<StreamedMaps> AttentionCapture::finish_stream() {
  Impl& m = *impl_;
  if (m.stream && !m.stream->finished()) {
    m.streamed = m.stream->finish(static_cast<int64_t>(m.layers.size()),
                                  static_cast<int64_t>(m.heads.size()), m.n_tokens);
  }
  return m.streamed;
}

const std::optional<StreamedMaps>& AttentionCapture::streamed() const {
  return impl_->streamed;
}

void AttentionCapture::clear() {
  Impl& m = *impl_;
  for (auto& s : m.rows) s.clear();
  m.blocks.clear();
  m.n_tokens = m.stored = m.dropped = m.sparse = 0;
  m.full = false;
  m.detail.reset();
  for (auto& b : m.block_sum) b.clear();
  for (auto& b : m.block_rows) b.clear();
}

}  // namespace qkv
