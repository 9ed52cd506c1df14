// The forward passes, composed of the shared blocks (model/blocks.h):
//   decoder (GPT-2, LLaMA): embed -> [norm -> q,k,v (+RoPE) -> cache -> causal attention -> o
//                            -> residual -> norm -> MLP -> residual] x n_layer -> norm -> head
//   encoder (BERT):          embed -> LayerNorm -> [q,k,v -> attention -> o -> residual -> LN
//                            -> MLP -> residual -> LN] x n_layer (-> pooler)
// Every intermediate is offered to the observer under the names listed in qkv/observer.h.
#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <initializer_list>

#include "core/error.h"
#include "core/half.h"
#include "core/parallel.h"
#include "kernels/quant/quantize.h"
#include "model/blocks.h"
#include "model/context_parallel.h"
#include "model/forward.h"
#include "qkv/attention.h"

namespace qkv::model {

KvCache::KvCache(const Model& model, int64_t n_ctx, KvType type) : n_ctx_(n_ctx), type_(type) {
  const ModelConfig& c = model.config();
  if (n_ctx <= 0) core::throw_invalid("KV cache: n_ctx must be > 0, found ", n_ctx);
  k_row_ = c.n_head_kv * c.head_dim;
  v_row_ = c.n_head_kv * c.head_dim;
  if (type == KvType::q8_0 && c.head_dim % core::kQ8Elems != 0) {
    core::throw_invalid("KV cache q8_0: its blocks of ", core::kQ8Elems,
                        " values run along a head, but this model's head_dim is ", c.head_dim,
                        ", not a multiple of ", core::kQ8Elems, "; use --kv f16 or f32");
  }
  for (int l = 0; l < c.n_layer; ++l) {
    k_.emplace_back(static_cast<size_t>(dtype_bytes(dtype(), n_ctx * k_row_)));
    v_.emplace_back(static_cast<size_t>(dtype_bytes(dtype(), n_ctx * v_row_)));
  }
}

size_t KvCache::bytes() const {
  size_t s = 0;
  for (const auto& b : k_) s += b.size();
  for (const auto& b : v_) s += b.size();
  return s;
}

size_t Workspace::bytes() const {
  size_t n = 0;
  for (const auto* buf : {&x, &h, &q, &k, &v, &att, &proj, &up, &gate, &lse, &rows, &logits}) {
    n += buf->capacity() * sizeof(float);
  }
  return n + linear.bytes();
}

void Workspace::release() {
  *this = Workspace{};
}

bool has_pooler(const Model& model) {
  return ModelAccess::impl(model).has_pooler;
}

namespace {

using Clock = std::chrono::steady_clock;

float* sized(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// Accumulates seconds into one of ForwardTimes' buckets.
class Timer {
 public:
  explicit Timer(ForwardTimes* t) : t_(t), last_(t ? Clock::now() : Clock::time_point{}) {}
  void charge(double ForwardTimes::*bucket) {
    if (!t_) return;
    const auto now = Clock::now();
    t_->*bucket += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }

 private:
  ForwardTimes* t_;
  Clock::time_point last_;
};

// Offers activations to an observer: to on_activation() when it wants them, and writable to
// on_edit() when it wants edits (qkv/observer.h).
class Emitter {
 public:
  Emitter(Observer* obs, int64_t pos0, int64_t n) : pos0_(pos0), n_(n) {
    if (!obs) return;
    read_ = obs->wants_activations();
    edit_ = obs->wants_edits();
    if (read_ || edit_) obs_ = obs;
  }
  bool on() const { return obs_ != nullptr; }
  // The rows emitted from now on (ForwardOptions::last_rows_only narrows them to the last).
  void narrow(int64_t pos0, int64_t n) { pos0_ = pos0, n_ = n; }
  void operator()(std::string_view name, int layer, float* data, int64_t width, int64_t rows = -1,
                  int64_t first = -1) const {
    if (!obs_) return;
    ActivationEvent e;
    e.name = name;
    e.layer = layer;
    e.first_position = first >= 0 ? first : pos0_;
    e.n_rows = rows >= 0 ? rows : n_;
    e.width = width;
    e.data = data;
    if (read_) obs_->on_activation(e);
    if (edit_) obs_->on_edit(e, data);
  }

 private:
  Observer* obs_ = nullptr;
  bool read_ = false, edit_ = false;
  int64_t pos0_, n_;
};

// Threads for a forward pass. A pass makes ~10 parallel regions per layer; each costs a few
// microseconds to start and join (much more when the cores are shared), which is more than the
// work itself for small models: stories260K decodes 1 MB of weights per token, ~40 us on one
// core, and ran 2-10x slower on two threads (tests/runtime measurements, docs/PERFORMANCE.md).
// Below 16 MB of weight traffic per call (token count x matrix bytes) one thread does it all.
int threads_for(const Model::Impl& m, int64_t n_tokens, int n_threads) {
  constexpr int64_t kSmallWork = int64_t{16} << 20;
  if (n_tokens * m.matrix_bytes < kSmallWork) return 1;
  return core::resolve_threads(n_threads);
}

void embed_rows(const Model::Impl& m, std::span<const int32_t> tokens, int64_t pos0, float* x) {
  const int64_t d = m.config.n_embd;
  std::vector<float> row(static_cast<size_t>(d));
  for (size_t i = 0; i < tokens.size(); ++i) {
    float* xi = x + static_cast<int64_t>(i) * d;
    kernels::weight_row_to_f32(m.tok_embd, tokens[i], xi);
    if (m.pos_embd.data) {
      kernels::weight_row_to_f32(m.pos_embd, pos0 + static_cast<int64_t>(i), row.data());
      add_inplace(xi, row.data(), d);
    }
  }
}

// Non-finite activations are an error naming where they first appear, never a silent answer (NaN
// logits made the sampler emit token 0 forever). Checked on the embeddings, on each layer's output
// and on the logits: one pass over [rows, width] floats, small beside a layer's matrix products.
void check_finite(const Model::Impl& m, const float* x, int64_t rows, int64_t width, int64_t pos0,
                  int layer, const char* what) {
  const int64_t count = rows * width;
  uint32_t bad = 0;  // an exponent of all ones is an infinity or a NaN
  for (int64_t i = 0; i < count; ++i) {
    bad |= static_cast<uint32_t>((std::bit_cast<uint32_t>(x[i]) & 0x7f800000u) == 0x7f800000u);
  }
  if (bad == 0) return;
  int64_t i = 0;
  while (std::isfinite(x[i])) ++i;
  const std::string where = layer >= 0 ? core::concat("layer ", layer, "'s ", what) : what;
  core::throw_error(m.file.path, ": non-finite value (", x[i], ") in ", where, " at position ",
                    pos0 + i / width, ", first seen there (what came before was finite): the ",
                    "model's weights or hyper-parameters (norm epsilon, RoPE base) are broken");
}

// Gemma 2: logits -> cap * tanh(logits / cap)
void softcap_logits(const ModelConfig& c, std::vector<float>& logits) {
  if (c.final_softcap <= 0) return;
  const float cap = static_cast<float>(c.final_softcap);
  for (float& z : logits) z = cap * std::tanh(z / cap);
}

void check_tokens(const Model::Impl& m, std::span<const int32_t> tokens) {
  if (tokens.empty()) core::throw_invalid("forward: no tokens");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= m.config.n_vocab) {
      core::throw_invalid("forward: token ", i, " is id ", tokens[i],
                          ", outside the vocabulary [0, ", m.config.n_vocab, ")");
    }
  }
}

void norm(const Model::Impl& m, const float* x, int64_t n, const Norm& w, float* out, int threads) {
  const float eps = static_cast<float>(m.config.norm_eps);
  if (w.b.empty() && m.traits->norm == NormKind::rms) {
    rms_norm(x, n, m.config.n_embd, w, eps, out, threads);
  } else {
    layer_norm(x, n, m.config.n_embd, w, eps, out, threads);
  }
}

void store_rows(const float* src, int64_t n, int64_t width, std::byte* dst, DType dtype) {
  if (dtype == DType::f32) {
    std::memcpy(dst, src, static_cast<size_t>(n * width) * 4);
    return;
  }
  if (dtype == DType::q8_0) {  // width = n_head_kv * head_dim, head_dim a multiple of 32
    kernels::quant::quantize_q8_0(src, n * width,
                                  reinterpret_cast<kernels::quant::BlockQ8_0*>(dst));
    return;
  }
  auto* h = reinterpret_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n * width; ++i) h[i] = core::f32_to_f16(src[i]);
}

// Runs one attention call and, when the observer watches this layer, hands it q, k, v, the
// output and the kernel's log-sum-exp (lse_buf sized [n_head, n_q] only then).
void attend(const View4& q, const View4& k, const View4& v, float* out, int layer, int64_t pos0,
            const AttentionOptions& opt, Observer* observer, std::vector<float>& lse_buf) {
  const int64_t n = q.shape[1], nh = q.shape[2];
  const bool watch = observer && observer->wants_attention(layer);
  const std::span<float> lse =
      watch ? std::span<float>(sized(lse_buf, nh * n), static_cast<size_t>(nh * n))
            : std::span<float>{};
  attention(q, k, v, MutView4::dense(out, {1, n, nh, v.shape[3]}), lse, opt);
  if (!watch) return;
  AttentionEvent e;
  e.layer = layer;
  e.first_position = pos0;
  e.q = q;
  e.k = k;
  e.v = v;
  e.out = out;
  e.lse = lse;
  e.options = &opt;
  observer->on_attention(e);
}

}  // namespace

namespace {

// A SequenceStep placed in the batch: its rows [row0, row0 + n) of the activations, the tokens
// at positions pos0.., their K/V at cache_row.. of its cache (-1: another rank stores them). A
// context-parallel step has a segment per piece of its rows (model/context_parallel.h).
struct Segment {
  const SequenceStep* step = nullptr;
  std::span<const int32_t> tokens;
  int64_t row0 = 0, n = 0, pos0 = 0, cache_row = 0;
  const std::vector<float>* inv_freq_global = nullptr;  // RoPE of the non-sliding layers
  Emitter emit{nullptr, 0, 0};
};

void check_context(const Model::Impl& m, const KvCache& cache, int64_t n) {
  const int64_t pos0 = cache.n_past();
  if (pos0 + n > cache.n_ctx()) {
    core::throw_error("context full: ", pos0, " tokens in the cache + ", n, " new = ", pos0 + n,
                      " > the context length of ", cache.n_ctx(),
                      " tokens; raise the context length (this model was trained with ",
                      m.config.n_ctx, ")");
  }
  if (m.pos_embd.data && pos0 + n > m.pos_embd.n_out) {
    core::throw_error("context full: position ", pos0 + n - 1, " is past the ", m.pos_embd.n_out,
                      " learned positions of this model");
  }
}

}  // namespace

void decoder_forward(const Model& model, KvCache& cache, std::span<const int32_t> tokens,
                     bool all_logits, std::vector<float>& logits, const ForwardOptions& options) {
  const SequenceStep step{&cache, tokens, all_logits, &logits, options.observer};
  decoder_forward_batch(model, std::span<const SequenceStep>(&step, 1), options);
}

void decoder_forward_batch(const Model& model, std::span<const SequenceStep> steps,
                           const ForwardOptions& options) {
  const int n_threads = options.n_threads;
  const Backend attention_backend = options.attention_backend;
  const kernels::LinearPath path = options.linear_path;
  const Model::Impl& m = ModelAccess::impl(model);
  const ModelConfig& c = m.config;
  if (!m.traits->decoder) {
    core::throw_invalid("forward: ", m.file.path, " is an encoder (bert); use encode()");
  }
  if (steps.empty()) core::throw_invalid("forward: no sequences");
  ContextParallel* const cpar = options.context_parallel;
  if (cpar && steps.size() != 1) {
    core::throw_invalid("forward: context parallelism runs one sequence, not ", steps.size());
  }
  if (cpar && (!options.resume.residual.empty() || options.last_rows_only)) {
    core::throw_invalid("forward: context parallelism runs every layer for every row (no resume, ",
                        "no last_rows_only)");
  }
  std::vector<Segment> segs(cpar ? 0 : steps.size());
  int64_t n = 0;  // rows of all sequences
  cp::Plan plan;
  std::vector<char> watched;  // context parallel: the layers rank 0's observer watches
  if (cpar) {
    const SequenceStep& st = steps[0];
    if (!st.cache || !st.logits) core::throw_invalid("forward: sequence 0 has no cache");
    check_tokens(m, st.tokens);
    const int64_t len = static_cast<int64_t>(st.tokens.size());
    if (m.pos_embd.data && cpar->n_past + len > m.pos_embd.n_out) {
      core::throw_error("context full: position ", cpar->n_past + len - 1, " is past the ",
                        m.pos_embd.n_out, " learned positions of this model");
    }
    plan = cp::plan(*cpar, st.tokens, st.all_logits, st.cache->n_ctx());
    for (const cp::Piece& p : plan.pieces) {
      Segment g;
      g.step = &st;
      g.tokens = st.tokens.subspan(static_cast<size_t>(p.token0), static_cast<size_t>(p.n));
      g.row0 = n;
      g.n = p.n;
      g.pos0 = p.pos0;
      g.cache_row = p.cache_row;
      g.inv_freq_global = !m.rope_inv_freq_long.empty() && cpar->n_ctx > c.n_ctx_orig
                              ? &m.rope_inv_freq_long
                              : &m.rope_inv_freq;
      segs.push_back(g);
      n += p.n;
    }
    watched = cp::watched_layers(*cpar, st.observer, static_cast<int>(c.n_layer));
  }
  for (size_t i = 0; i < (cpar ? 0 : steps.size()); ++i) {
    const SequenceStep& st = steps[i];
    if (!st.cache || !st.logits) core::throw_invalid("forward: sequence ", i, " has no cache");
    for (size_t j = 0; j < i; ++j) {
      if (steps[j].cache == st.cache) {
        core::throw_invalid("forward: sequences ", j, " and ", i, " share one KV cache");
      }
    }
    check_tokens(m, st.tokens);
    if (options.last_rows_only && st.all_logits) {
      core::throw_invalid("forward: sequence ", i, " wants all logits; last_rows_only runs ",
                          "the last layer for the last row only");
    }
    const int64_t len = static_cast<int64_t>(st.tokens.size());
    check_context(m, *st.cache, len);
    Segment& g = segs[i];
    g.step = &st;
    g.tokens = st.tokens;
    g.row0 = n;
    g.n = len;
    g.pos0 = st.cache->n_past();
    g.cache_row = g.pos0;
    // Phi-3 LongRoPE: the long factors when the context exceeds the original one (llama.cpp's
    // choice, by the context size rather than the position).
    g.inv_freq_global = !m.rope_inv_freq_long.empty() && st.cache->n_ctx() > c.n_ctx_orig
                            ? &m.rope_inv_freq_long
                            : &m.rope_inv_freq;
    g.emit = Emitter(st.observer, g.pos0, len);
    n += len;
  }
  const int64_t n_tokens = n;
  const int threads = threads_for(m, n, n_threads);
  const int64_t d = c.n_embd, hd = c.head_dim, nh = c.n_head, nkv = c.n_head_kv;
  const int64_t nq_w = nh * hd, nkv_w = nkv * hd, ff = c.n_ff;
  Workspace local;  // only when the caller has none (a Session passes its own)
  Workspace& s = options.workspace ? *options.workspace : local;
  float* x = sized(s.x, n * d);         // [n, n_embd] residual stream
  float* h = sized(s.h, n * d);         // [n, n_embd] normed
  float* q = sized(s.q, n * nq_w);      // [n, n_head * head_dim]
  float* k = sized(s.k, n * nkv_w);     // [n, n_head_kv * head_dim]
  float* v = sized(s.v, n * nkv_w);     // [n, n_head_kv * head_dim]
  float* att = sized(s.att, n * nq_w);  // [n, n_head * head_dim]
  float* proj = sized(s.proj, n * d);   // [n, n_embd]
  float* up = sized(s.up, n * ff);      // [n, n_ff]
  float* gate = sized(s.gate, n * ff);  // [n, n_ff]
  // Offers rows of `data` ([n, width]) to each sequence's observer, positions its own.
  const auto emit = [&](std::string_view name, int layer, float* data, int64_t width) {
    for (const Segment& g : segs) g.emit(name, layer, data + g.row0 * width, width);
  };
  const auto linear = [&](const kernels::Linear& w, const float* in, int64_t ldin, float* out,
                          int64_t ldout, int64_t rows) {
    w.forward(in, rows, ldin, out, ldout, threads, &s.linear, path);
  };
  // Weights that read the same input, in one parallel region (no join between them).
  const auto linear_group = [&](std::initializer_list<kernels::LinearOutput> outs, const float* in,
                                int64_t ldin, int64_t rows) {
    kernels::Linear::forward_group(outs, in, rows, ldin, threads, &s.linear, path);
  };
  const auto finite = [&](const float* data, int layer, const char* what) {
    for (const Segment& g : segs) check_finite(m, data + g.row0 * d, g.n, d, g.pos0, layer, what);
  };
  Timer timer(options.times);

  const ForwardOptions::Resume& resume = options.resume;
  if (resume.residual.empty()) {
    if (resume.layer != 0)
      core::throw_invalid("forward: resume at layer ", resume.layer,
                          " without the residual stream entering it");
    for (const Segment& g : segs) embed_rows(m, g.tokens, g.pos0, x + g.row0 * d);
    if (m.traits->embd_scale) {
      // Gemma: x * sqrt(n_embd), the factor rounded to fp32 first as llama.cpp and HF do.
      const float scale = std::sqrt(static_cast<float>(d));
      for (int64_t i = 0; i < n * d; ++i) x[i] *= scale;
    }
    finite(x, -1, "token embeddings");
    emit("embed", -1, x, d);
  } else {
    if (resume.layer < 0 || resume.layer > c.n_layer ||
        static_cast<int64_t>(resume.residual.size()) != n * d) {
      core::throw_invalid("forward: resume at layer ", resume.layer, " with ",
                          resume.residual.size(), " residual values; expected a layer in [0, ",
                          c.n_layer, "] and ", n, " rows x ", d);
    }
    std::copy(resume.residual.begin(), resume.residual.end(), x);
  }
  if (!resume.attn_out.empty() && (resume.residual.empty() || resume.layer >= c.n_layer ||
                                   static_cast<int64_t>(resume.attn_out.size()) != n * nq_w)) {
    core::throw_invalid("forward: resume at layer ", resume.layer, "'s attention output with ",
                        resume.attn_out.size(), " values and ", resume.residual.size(),
                        " residual values; expected a layer in [0, ", c.n_layer, "), ", n,
                        " rows x ", nq_w, " and the residual stream entering the layer");
  }
  timer.charge(&ForwardTimes::other);

  for (int64_t l = resume.layer; l < c.n_layer; ++l) {
    const LayerWeights& L = m.layers[static_cast<size_t>(l)];
    const int layer = static_cast<int>(l);
    // Resumed at this layer's attention output (ForwardOptions::Resume::attn_out).
    const bool from_attn = l == resume.layer && !resume.attn_out.empty();
    if (!from_attn) {
      norm(m, x, n, L.attn_norm, h, threads);
      emit("attn_norm", layer, h, d);
      timer.charge(&ForwardTimes::other);
      linear_group({{&L.wq, q, nq_w}, {&L.wk, k, nkv_w}, {&L.wv, v, nkv_w}}, h, d, n);
      timer.charge(&ForwardTimes::linear);
      if (!L.q_norm.empty()) {
        // Qwen 3: each head of q and k RMS-normed over head_dim before RoPE; q and k are dense
        // [n * n_head, head_dim] here.
        const float eps = static_cast<float>(c.norm_eps);
        rms_norm(q, n * nh, hd, L.q_norm, eps, q, threads);
        rms_norm(k, n * nkv, hd, L.k_norm, eps, k, threads);
      }
      for (const Segment& g : segs) {
        const std::vector<float>& inv_freq =
            L.sliding && !m.rope_inv_freq_swa.empty() ? m.rope_inv_freq_swa : *g.inv_freq_global;
        rope(q + g.row0 * nq_w, g.n, nq_w, nh, hd, g.pos0, inv_freq, m.rope);
        rope(k + g.row0 * nkv_w, g.n, nkv_w, nkv, hd, g.pos0, inv_freq, m.rope);
      }
      if (m.rope_mscale != 1.0f) {
        for (int64_t i = 0; i < n * nq_w; ++i) q[i] *= m.rope_mscale;
        for (int64_t i = 0; i < n * nkv_w; ++i) k[i] *= m.rope_mscale;
      }
      emit("q", layer, q, nq_w);
      emit("k", layer, k, nkv_w);
      emit("v", layer, v, nkv_w);
      for (const Segment& g : segs) {
        KvCache& cache = *g.step->cache;
        if (g.cache_row < 0) continue;
        store_rows(k + g.row0 * nkv_w, g.n, nkv_w, cache.k_at(layer, g.cache_row), cache.dtype());
        store_rows(v + g.row0 * nkv_w, g.n, nkv_w, cache.v_at(layer, g.cache_row), cache.dtype());
      }
      timer.charge(&ForwardTimes::other);
    } else {
      std::copy(resume.attn_out.begin(), resume.attn_out.end(), att);
    }

    if (options.last_rows_only && l == c.n_layer - 1) {
      // Past its K/V, the last layer runs only the row each sequence's logits come from: every
      // row of a sequence goes on to the last one through the K/V just written.
      for (size_t i = 0; i < segs.size(); ++i) {
        Segment& g = segs[i];
        const int64_t last = g.row0 + g.n - 1, to = static_cast<int64_t>(i);
        float* const moved = from_attn ? att : q;  // [n, n_head * head_dim]
        std::memmove(moved + to * nq_w, moved + last * nq_w,
                     static_cast<size_t>(nq_w) * sizeof(float));
        std::memmove(x + to * d, x + last * d, static_cast<size_t>(d) * sizeof(float));
        g.pos0 += g.n - 1;
        g.cache_row += g.n - 1;
        g.row0 = to;
        g.n = 1;
        g.emit.narrow(g.pos0, 1);
      }
      n = static_cast<int64_t>(segs.size());
    }
    AttentionOptions opt;
    opt.causal = true;
    opt.scale = static_cast<float>(c.attn_scale);  // 0: 1 / sqrt(head_dim)
    opt.softcap = static_cast<float>(c.attn_softcap);
    // A sliding layer's query at p sees keys p - window + 1 .. p (llama.cpp: masked when
    // p - j >= n_swa; HF: the same).
    if (L.sliding) opt.window_left = c.sliding_window - 1;
    opt.n_threads = threads;
    opt.backend = attention_backend;
    // The int8 mode scores a q8_0 cache in integers as llama.cpp does (other caches ignore it).
    opt.int8_scores = m.int8_dot;
    if (cpar) {
      cp::attention(*cpar, plan, q, nh, hd, *steps[0].cache, layer, opt, att,
                    watched[static_cast<size_t>(layer)] != 0, steps[0].observer, s.lse);
    }
    const bool attend_here = !cpar && !from_attn;
    for (const Segment& g :
         attend_here ? std::span<const Segment>(segs) : std::span<const Segment>{}) {
      KvCache& cache = *g.step->cache;
      const int64_t n_kv = g.pos0 + g.n;
      const View4 qv = View4::dense(q + g.row0 * nq_w, DType::f32, {1, g.n, nh, hd});
      const View4 kview = View4::dense(cache.k(layer), cache.dtype(), {1, n_kv, nkv, hd});
      const View4 vview = View4::dense(cache.v(layer), cache.dtype(), {1, n_kv, nkv, hd});
      attend(qv, kview, vview, att + g.row0 * nq_w, layer, g.pos0, opt, g.step->observer, s.lse);
    }
    timer.charge(&ForwardTimes::attention);
    emit("attn_out", layer, att, nq_w);
    linear(L.wo, att, nq_w, proj, d, n);
    timer.charge(&ForwardTimes::linear);
    if (!L.attn_post_norm.empty()) norm(m, proj, n, L.attn_post_norm, proj, threads);
    emit("attn_proj", layer, proj, d);
    add_inplace(x, proj, n * d);
    emit("attn_resid", layer, x, d);
    norm(m, x, n, L.ffn_norm, h, threads);
    emit("ffn_norm", layer, h, d);
    timer.charge(&ForwardTimes::other);
    float* act = nullptr;
    if (L.ffn_gate.n_out() > 0) {
      linear_group({{&L.ffn_gate, gate, ff}, {&L.ffn_up, up, ff}}, h, d, n);
      timer.charge(&ForwardTimes::linear);
      emit("ffn_gate", layer, gate, ff);
      emit("ffn_up", layer, up, ff);
      if (m.traits->ffn == FfnKind::geglu_tanh) {
        gelu_tanh_mul(gate, up, n * ff, threads);
      } else {
        silu_mul(gate, up, n * ff, threads);
      }
      act = gate;
    } else {
      linear(L.ffn_up, h, d, up, ff, n);
      timer.charge(&ForwardTimes::linear);
      emit("ffn_up", layer, up, ff);
      gelu_tanh(up, n * ff, threads);
      act = up;
    }
    emit("ffn_act", layer, act, ff);
    timer.charge(&ForwardTimes::other);
    linear(L.ffn_down, act, ff, proj, d, n);
    timer.charge(&ForwardTimes::linear);
    if (!L.ffn_post_norm.empty()) norm(m, proj, n, L.ffn_post_norm, proj, threads);
    emit("ffn_out", layer, proj, d);
    add_inplace(x, proj, n * d);
    finite(x, layer, "output");
    emit("layer_out", layer, x, d);
    timer.charge(&ForwardTimes::other);
  }

  if (cpar) {
    // Context parallel: every row of this rank (all_logits), or the sequence's last row on the
    // rank that holds it; then to rank 0 in position order, or to every rank.
    const SequenceStep& st = steps[0];
    std::vector<float>& logits = *st.logits;
    logits.clear();
    const int me = cpar->comm->rank();
    const int64_t rows = st.all_logits ? n : cp::last_row_rank(*cpar, plan) == me ? 1 : 0;
    if (rows > 0) {
      norm(m, x + (n - rows) * d, rows, m.out_norm, h, threads);
      timer.charge(&ForwardTimes::other);
      logits.resize(static_cast<size_t>(rows * c.n_vocab));
      linear(m.lm_head, h, d, logits.data(), c.n_vocab, rows);
      softcap_logits(c, logits);
      for (const Segment& g : segs) {
        const int64_t first = std::max<int64_t>(g.row0, n - rows);
        if (first >= g.row0 + g.n) continue;
        check_finite(m, logits.data() + (first - (n - rows)) * c.n_vocab, g.row0 + g.n - first,
                     c.n_vocab, g.pos0 + (first - g.row0), -1, "logits");
      }
    }
    cp::share_logits(*cpar, plan, logits, c.n_vocab, st.all_logits);
    timer.charge(&ForwardTimes::linear);
    cp::commit(*cpar, std::move(plan));
    st.cache->set_n_past(cpar->held(me));
    if (options.times) options.times->tokens += n;
    return;
  }

  // The final norm and the head only for the rows asked for (the last one of a sequence while
  // generating), unless an observer wants every row's final norm. The rows of every sequence
  // are gathered into h and go through the head together.
  int64_t n_head_rows = 0;
  std::vector<int64_t> head_row0(segs.size());
  for (size_t i = 0; i < segs.size(); ++i) {
    const Segment& g = segs[i];
    const int64_t first = g.step->all_logits || g.emit.on() ? 0 : g.n - 1;
    norm(m, x + (g.row0 + first) * d, g.n - first, m.out_norm, h + n_head_rows * d, threads);
    g.emit("final_norm", -1, h + n_head_rows * d, d, g.n - first, g.pos0 + first);
    const int64_t rows = g.step->all_logits ? g.n : 1;
    // The rows that go through the head: all of them, or the last one.
    head_row0[i] = n_head_rows + (g.n - first) - rows;
    n_head_rows += g.n - first;
  }
  timer.charge(&ForwardTimes::other);
  std::vector<float>& first_logits = *segs[0].step->logits;
  if (segs.size() == 1) {
    const Segment& g = segs[0];
    const int64_t rows = g.step->all_logits ? g.n : 1;
    first_logits.resize(static_cast<size_t>(rows * c.n_vocab));
    linear(m.lm_head, h + head_row0[0] * d, d, first_logits.data(), c.n_vocab, rows);
  } else {
    // Sequences that want only their last row: those rows packed together for one product, into
    // the workspace (a decode step of a busy server would otherwise allocate [B, n_vocab] each).
    std::vector<float>& packed = s.logits;
    int64_t rows_all = 0;
    for (size_t i = 0; i < segs.size(); ++i) {
      const int64_t rows = segs[i].step->all_logits ? segs[i].n : 1;
      if (head_row0[i] != rows_all) {
        std::memmove(h + rows_all * d, h + head_row0[i] * d, static_cast<size_t>(rows * d) * 4);
      }
      head_row0[i] = rows_all;
      rows_all += rows;
    }
    packed.resize(static_cast<size_t>(rows_all * c.n_vocab));
    linear(m.lm_head, h, d, packed.data(), c.n_vocab, rows_all);
    for (size_t i = 0; i < segs.size(); ++i) {
      const int64_t rows = segs[i].step->all_logits ? segs[i].n : 1;
      const float* src = packed.data() + head_row0[i] * c.n_vocab;
      segs[i].step->logits->assign(src, src + rows * c.n_vocab);
    }
  }
  for (const Segment& g : segs) {
    std::vector<float>& logits = *g.step->logits;
    const int64_t rows = g.step->all_logits ? g.n : 1;
    softcap_logits(c, logits);
    check_finite(m, logits.data(), rows, c.n_vocab, g.pos0 + g.n - rows, -1, "logits");
  }
  timer.charge(&ForwardTimes::linear);
  for (const Segment& g : segs) {
    const int64_t rows = g.step->all_logits ? g.n : 1;
    g.emit("logits", -1, g.step->logits->data(), c.n_vocab, rows, g.pos0 + g.n - rows);
    g.step->cache->set_n_past(g.pos0 + g.n);
  }
  if (options.times) options.times->tokens += n_tokens;
}

void encoder_forward(const Model& model, std::span<const int32_t> tokens,
                     std::span<const int32_t> token_types, std::vector<float>& hidden,
                     std::vector<float>* pooled, const ForwardOptions& options) {
  const int n_threads = options.n_threads;
  Observer* const observer = options.observer;
  ForwardTimes* const times = options.times;
  const Backend attention_backend = options.attention_backend;
  Workspace* const workspace = options.workspace;
  const Model::Impl& m = ModelAccess::impl(model);
  const ModelConfig& c = m.config;
  if (m.traits->decoder) {
    core::throw_invalid("encode: ", m.file.path, " is a decoder (", architecture_name(m.arch),
                        "); use eval()");
  }
  check_tokens(m, tokens);
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n > m.pos_embd.n_out) {
    core::throw_error("input of ", n, " tokens is longer than the ", m.pos_embd.n_out,
                      " positions this model was trained with; shorten the text");
  }
  if (!token_types.empty() && static_cast<int64_t>(token_types.size()) != n) {
    core::throw_invalid("encode: ", token_types.size(), " token types for ", n, " tokens");
  }
  const int threads = threads_for(m, n, n_threads);
  const int64_t d = c.n_embd, hd = c.head_dim, nh = c.n_head, nkv = c.n_head_kv;
  const int64_t nq_w = nh * hd, nkv_w = nkv * hd, ff = c.n_ff;
  Workspace local;  // only when the caller has none (a Session passes its own)
  Workspace& s = workspace ? *workspace : local;
  hidden.resize(static_cast<size_t>(n * d));
  float* x = hidden.data();             // [n, n_embd]
  float* q = sized(s.q, n * nq_w);      // [n, n_head * head_dim]
  float* k = sized(s.k, n * nkv_w);     // [n, n_head_kv * head_dim]
  float* v = sized(s.v, n * nkv_w);     // [n, n_head_kv * head_dim]
  float* att = sized(s.att, n * nq_w);  // [n, n_head * head_dim]
  float* proj = sized(s.proj, n * d);   // [n, n_embd]
  float* up = sized(s.up, n * ff);      // [n, n_ff]
  float* row = sized(s.rows, d);
  const Emitter emit(observer, 0, n);
  Timer timer(times);

  embed_rows(m, tokens, 0, x);
  if (m.type_embd.data) {
    for (int64_t i = 0; i < n; ++i) {
      const int32_t t = token_types.empty() ? 0 : token_types[static_cast<size_t>(i)];
      if (t < 0 || t >= m.type_embd.n_out) {
        core::throw_invalid("encode: token type ", t, " at ", i, " outside [0, ", m.type_embd.n_out,
                            ")");
      }
      kernels::weight_row_to_f32(m.type_embd, t, row);
      add_inplace(x + i * d, row, d);
    }
  }
  norm(m, x, n, m.embd_norm, x, threads);
  check_finite(m, x, n, d, 0, -1, "token embeddings");
  emit("embed", -1, x, d);
  timer.charge(&ForwardTimes::other);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    const LayerWeights& L = m.layers[static_cast<size_t>(l)];
    const int layer = static_cast<int>(l);
    const kernels::LinearOutput qkv_out[] = {
        {&L.wq, q, nq_w}, {&L.wk, k, nkv_w}, {&L.wv, v, nkv_w}};
    kernels::Linear::forward_group(qkv_out, x, n, d, threads, &s.linear);
    timer.charge(&ForwardTimes::linear);
    emit("q", layer, q, nq_w);
    emit("k", layer, k, nkv_w);
    emit("v", layer, v, nkv_w);
    const View4 qv = View4::dense(q, DType::f32, {1, n, nh, hd});
    const View4 kview = View4::dense(k, DType::f32, {1, n, nkv, hd});
    const View4 vview = View4::dense(v, DType::f32, {1, n, nkv, hd});
    AttentionOptions opt;
    opt.n_threads = threads;
    opt.backend = attention_backend;
    attend(qv, kview, vview, att, layer, 0, opt, observer, s.lse);
    timer.charge(&ForwardTimes::attention);
    emit("attn_out", layer, att, nq_w);
    L.wo.forward(att, n, nq_w, proj, d, threads, &s.linear);
    timer.charge(&ForwardTimes::linear);
    emit("attn_proj", layer, proj, d);
    add_inplace(x, proj, n * d);
    norm(m, x, n, L.attn_out_norm, x, threads);
    emit("attn_resid", layer, x, d);
    timer.charge(&ForwardTimes::other);
    L.ffn_up.forward(x, n, d, up, ff, threads, &s.linear);
    timer.charge(&ForwardTimes::linear);
    emit("ffn_up", layer, up, ff);
    gelu_erf(up, n * ff, threads);
    emit("ffn_act", layer, up, ff);
    timer.charge(&ForwardTimes::other);
    L.ffn_down.forward(up, n, ff, proj, d, threads, &s.linear);
    timer.charge(&ForwardTimes::linear);
    emit("ffn_out", layer, proj, d);
    add_inplace(x, proj, n * d);
    norm(m, x, n, L.ffn_out_norm, x, threads);
    check_finite(m, x, n, d, 0, layer, "output");
    emit("layer_out", layer, x, d);
    timer.charge(&ForwardTimes::other);
  }
  if (pooled && m.has_pooler) {
    pooled->resize(static_cast<size_t>(d));
    m.pooler.forward(x, 1, d, pooled->data(), d, threads, &s.linear);
    tanh_inplace(pooled->data(), d);
    check_finite(m, pooled->data(), 1, d, 0, -1, "pooled output");
    emit("pooled", -1, pooled->data(), d, 1, 0);
  }
  timer.charge(&ForwardTimes::other);
  if (times) times->tokens += n;
}

}  // namespace qkv::model
