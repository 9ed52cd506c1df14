// Input gradients of a decoder (model/backward.h). The forward pass below follows
// decoder_forward (model/forward.cpp) step for step, on B fresh sequences of n tokens, keeping
// what the backward pass needs; the backward pass walks it in reverse:
//
//   forward, per layer                       backward (dx: gradient of the residual stream)
//   h  = norm(x_in)                          dx += norm'(x_in)ᵀ · dh
//   q, k, v = h Wᵀ (+ b)                     dh  = dq Wq + dk Wk + dv Wv
//   q, k = qk_norm(q, k) (Qwen 3, Gemma 3)   dq, dk through the per-head RMSNorm
//   q, k = rope(q, k) · mscale               dq, dk rotated back (RoPE is a rotation)
//   att = attention(q, k, v)                 dq, dk, dv = attention_backward(datt)
//   o  = att Woᵀ (+ b) (post-norm, Gemma 2)  datt = do Wo
//   x_mid = x_in + o                         do = dx
//   h2 = norm(x_mid)                         dx += norm'(x_mid)ᵀ · dh2
//   a  = act(h2 Wgᵀ) ∘ (h2 Wuᵀ) or gelu(..)  dh2 = dg Wg + du Wu
//   f  = a Wdᵀ (+ b) (post-norm, Gemma 2)    da = df Wd
//   x_out = x_mid + f                        df = dx
//
// Reductions (norms, softmax, dot products of a row) accumulate in double; the matrix products
// are fp32 (GEMM library), as in the forward pass.
#include "model/backward.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "core/cpu_time.h"
#include "core/error.h"
#include "core/parallel.h"
#include "model/blocks.h"
#include "model/model_impl.h"

namespace qkv::model {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// What a layer's backward pass reads ([R, width] each, R = B * n rows).
struct LayerSaved {
  std::vector<float> x_in;          // [R, n_embd] the layer's input
  std::vector<float> q_raw, k_raw;  // [R, n_head * head_dim], [R, n_head_kv * head_dim] before
                                    // the QK-norm (Qwen 3, Gemma 3); empty otherwise
  std::vector<float> q, k, v;       // after RoPE: what the attention read
  std::vector<float> att;           // [R, n_head * head_dim] the attention output
  std::vector<float> lse;           // [B, n_head, n]
  std::vector<float> o_raw;         // [R, n_embd] before the post-attention norm (Gemma 2)
  std::vector<float> x_mid;         // [R, n_embd] after the attention's residual add
  std::vector<float> gate, up;      // [R, n_ff] before the activation (gate: gated MLPs only)
  std::vector<float> f_raw;         // [R, n_embd] before the post-MLP norm (Gemma 2)
};

class Pass {
 public:
  Pass(const Model& model, std::span<const int32_t> tokens, std::span<const float> embeddings,
       const GradientOptions& options)
      : m_(ModelAccess::impl(model)), c_(m_.config), opt_(options) {
    if (!m_.traits->decoder) {
      core::throw_invalid("gradients: ", m_.file.path, " is an encoder (",
                          architecture_name(m_.arch),
                          "); attribution by gradients runs on decoders only");
    }
    n_ = static_cast<int64_t>(tokens.size());
    d_ = c_.n_embd;
    if (n_ == 0) core::throw_invalid("gradients: no tokens");
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] < 0 || tokens[i] >= c_.n_vocab) {
        core::throw_invalid("gradients: token ", i, " is id ", tokens[i],
                            ", outside the vocabulary [0, ", c_.n_vocab, ")");
      }
    }
    if (embeddings.empty() || embeddings.size() % static_cast<size_t>(n_ * d_) != 0) {
      core::throw_invalid("gradients: ", embeddings.size(), " embedding values are not a whole ",
                          "number of sequences of ", n_, " tokens x ", d_, " (n_embd)");
    }
    if (m_.pos_embd.data && n_ > m_.pos_embd.n_out) {
      core::throw_invalid("gradients: ", n_, " tokens are past the ", m_.pos_embd.n_out,
                          " learned positions of this model");
    }
    b_ = static_cast<int64_t>(embeddings.size()) / (n_ * d_);
    r_ = b_ * n_;
    hd_ = c_.head_dim;
    nh_ = c_.n_head;
    nkv_ = c_.n_head_kv;
    nq_w_ = nh_ * hd_;
    nkv_w_ = nkv_ * hd_;
    ff_ = c_.n_ff;
    // One thread below 16 MB of weight traffic, as model/forward.cpp's threads_for (measured
    // there: parallel regions cost more than such passes on a shared machine).
    threads_ =
        r_ * m_.matrix_bytes < (int64_t{16} << 20) ? 1 : core::resolve_threads(options.n_threads);
    const int64_t n_ctx = options.n_ctx > 0 ? options.n_ctx : n_;
    inv_freq_global_ = !m_.rope_inv_freq_long.empty() && n_ctx > c_.n_ctx_orig
                           ? &m_.rope_inv_freq_long
                           : &m_.rope_inv_freq;
    embeddings_ = embeddings;
  }

  int64_t batch() const { return b_; }

  // The forward pass; keeps every layer's activations when `keep`. Leaves the last rows' logits
  // (after the soft-cap) in logits_ [B, n_vocab].
  void forward(bool keep) {
    saved_.assign(keep ? static_cast<size_t>(c_.n_layer) : 1, LayerSaved{});
    std::vector<float> x(embeddings_.begin(), embeddings_.end());  // [R, n_embd] residual
    if (m_.pos_embd.data) {
      std::vector<float> row(static_cast<size_t>(d_));
      for (int64_t i = 0; i < n_; ++i) {
        kernels::weight_row_to_f32(m_.pos_embd, i, row.data());
        for (int64_t b = 0; b < b_; ++b) add_inplace(&x[at(b * n_ + i, d_)], row.data(), d_);
      }
    }
    if (m_.traits->embd_scale) {
      const float scale = std::sqrt(static_cast<float>(d_));  // rounded to fp32 as forward.cpp
      for (float& v : x) v *= scale;
    }
    std::vector<float> h(x.size());
    for (int64_t l = 0; l < c_.n_layer; ++l) {
      LayerSaved& s = saved_[keep ? static_cast<size_t>(l) : 0];
      forward_layer(static_cast<int>(l), x, h, s);
    }
    // The final norm and the head for the last row of each sequence.
    x_last_.resize(static_cast<size_t>(b_ * d_));
    for (int64_t b = 0; b < b_; ++b) {
      std::memcpy(&x_last_[at(b, d_)], &x[at(b * n_ + n_ - 1, d_)], static_cast<size_t>(d_) * 4);
    }
    std::vector<float> h_last(x_last_.size());
    norm(x_last_.data(), b_, d_, m_.out_norm, h_last.data());
    logits_.resize(static_cast<size_t>(b_ * c_.n_vocab));
    m_.lm_head.forward(h_last.data(), b_, d_, logits_.data(), c_.n_vocab, threads_, &scratch_);
    if (c_.final_softcap > 0) {
      const float cap = static_cast<float>(c_.final_softcap);
      for (float& z : logits_) z = cap * std::tanh(z / cap);
    }
    for (float z : logits_) {
      if (!std::isfinite(z)) {
        core::throw_error(m_.file.path, ": non-finite logits in the gradient pass: the model's ",
                          "weights or hyper-parameters are broken, or the embeddings are");
      }
    }
  }

  const std::vector<float>& logits() const { return logits_; }

  // score_[b] and d score / d logits [B, n_vocab].
  std::vector<double> scores(const ScoreSpec& spec, std::vector<float>* dlogits) const {
    const int64_t nv = c_.n_vocab;
    std::vector<double> out(static_cast<size_t>(b_));
    if (dlogits) dlogits->assign(static_cast<size_t>(b_ * nv), 0.0f);
    for (int64_t b = 0; b < b_; ++b) {
      const float* z = &logits_[at(b, nv)];
      if (spec.contrast >= 0) {
        out[static_cast<size_t>(b)] = double(z[spec.target]) - z[spec.contrast];
        if (dlogits) {
          (*dlogits)[at(b, nv) + static_cast<size_t>(spec.target)] += 1.0f;
          (*dlogits)[at(b, nv) + static_cast<size_t>(spec.contrast)] -= 1.0f;
        }
        continue;
      }
      double zmax = z[0];
      for (int64_t v = 1; v < nv; ++v) zmax = std::max(zmax, double(z[v]));
      double sum = 0;
      for (int64_t v = 0; v < nv; ++v) sum += std::exp(z[v] - zmax);
      const double lse = zmax + std::log(sum);
      out[static_cast<size_t>(b)] = z[spec.target] - lse;
      if (dlogits) {
        float* g = &(*dlogits)[at(b, nv)];
        for (int64_t v = 0; v < nv; ++v) g[v] = static_cast<float>(-std::exp(z[v] - lse));
        g[spec.target] += 1.0f;
      }
    }
    return out;
  }

  // The backward pass from d score / d logits; writes d score / d embeddings [R, n_embd] and,
  // when asked, the attention-probability gradients of the last sequence.
  void backward(std::vector<float> dlogits, GradientResult& res) {
    if (c_.final_softcap > 0) {
      // z = cap tanh(u / cap): dz/du = 1 - (z / cap)²
      const double cap = c_.final_softcap;
      for (size_t i = 0; i < dlogits.size(); ++i) {
        const double t = logits_[i] / cap;
        dlogits[i] = static_cast<float>(dlogits[i] * (1.0 - t * t));
      }
    }
    std::vector<float> dh_last(static_cast<size_t>(b_ * d_));
    m_.lm_head.backward_input(dlogits.data(), b_, c_.n_vocab, dh_last.data(), d_, false, threads_,
                              &scratch_);
    std::vector<float> dx_last(dh_last.size());
    norm_backward(x_last_.data(), b_, d_, m_.out_norm, dh_last.data(), dx_last.data(), false);
    std::vector<float> dx(static_cast<size_t>(r_ * d_), 0.0f);  // [R, n_embd]
    for (int64_t b = 0; b < b_; ++b) {
      std::memcpy(&dx[at(b * n_ + n_ - 1, d_)], &dx_last[at(b, d_)], static_cast<size_t>(d_) * 4);
    }
    if (opt_.attention) {
      res.head_sums.assign(static_cast<size_t>(c_.n_layer * nh_), 0.0);
      res.target_rows.assign(static_cast<size_t>(c_.n_layer * nh_ * n_), 0.0f);
      res.target_grad.assign(res.target_rows.size(), 0.0f);
    }
    for (int64_t l = c_.n_layer - 1; l >= 0; --l) {
      backward_layer(static_cast<int>(l), dx, res);
    }
    if (m_.traits->embd_scale) {
      const float scale = std::sqrt(static_cast<float>(d_));
      for (float& v : dx) v *= scale;
    }
    res.d_embed = std::move(dx);
  }

 private:
  static size_t at(int64_t row, int64_t width) { return static_cast<size_t>(row * width); }

  bool rms(const Norm& w) const { return w.b.empty() && m_.traits->norm == NormKind::rms; }

  void norm(const float* x, int64_t rows, int64_t width, const Norm& w, float* out) const {
    const float eps = static_cast<float>(c_.norm_eps);
    if (rms(w)) {
      rms_norm(x, rows, width, w, eps, out, threads_);
    } else {
      layer_norm(x, rows, width, w, eps, out, threads_);
    }
  }

  // dx (+)= d norm(x) / dx ᵀ · dy, per row of `width`.
  //   RMSNorm   y = x r w, r = (mean x² + eps)^-1/2:  dx = r g - x r³ mean(x g),  g = w dy
  //   LayerNorm y = (x - μ) r w + b:                 dx = r (g - mean g - x̂ mean(g x̂))
  void norm_backward(const float* x, int64_t rows, int64_t width, const Norm& w, const float* dy,
                     float* dx, bool accumulate) const {
    const bool is_rms = rms(w);
    const double eps = static_cast<float>(c_.norm_eps), inv_n = 1.0 / static_cast<double>(width);
    core::parallel_for_dynamic(rows, rows * width >= (1 << 15) ? threads_ : 1, [&](int64_t i, int) {
      const float* xi = x + i * width;
      const float* gi = dy + i * width;
      float* oi = dx + i * width;
      double mean = 0, sq = 0, mg = 0, mgx = 0;
      if (!is_rms) {
        for (int64_t j = 0; j < width; ++j) mean += xi[j];
        mean *= inv_n;
      }
      for (int64_t j = 0; j < width; ++j) {
        const double c = xi[j] - mean;
        sq += c * c;
      }
      const double r = 1.0 / std::sqrt(sq * inv_n + eps);
      for (int64_t j = 0; j < width; ++j) {
        const double g = double(gi[j]) * w.w[static_cast<size_t>(j)];
        mg += g;
        mgx += g * (xi[j] - mean) * (is_rms ? 1.0 : r);
      }
      mg *= inv_n;
      mgx *= inv_n;
      for (int64_t j = 0; j < width; ++j) {
        const double g = double(gi[j]) * w.w[static_cast<size_t>(j)];
        const double v =
            is_rms ? r * g - xi[j] * r * r * r * mgx : r * (g - mg - (xi[j] - mean) * r * mgx);
        oi[j] = static_cast<float>((accumulate ? oi[j] : 0.0) + v);
      }
    });
  }

  const std::vector<float>& inv_freq(const LayerWeights& L) const {
    return L.sliding && !m_.rope_inv_freq_swa.empty() ? m_.rope_inv_freq_swa : *inv_freq_global_;
  }

  AttentionOptions attention_options(const LayerWeights& L) const {
    AttentionOptions o;
    o.causal = true;
    o.scale = static_cast<float>(c_.attn_scale);
    o.softcap = static_cast<float>(c_.attn_softcap);
    if (L.sliding) o.window_left = c_.sliding_window - 1;
    o.n_threads = threads_;
    o.backend = opt_.attention_backend;
    return o;
  }

  void linear(const kernels::Linear& w, const float* in, float* out) {
    w.forward(in, r_, w.n_in(), out, w.n_out(), threads_, &scratch_);
  }

  void forward_layer(int l, std::vector<float>& x, std::vector<float>& h, LayerSaved& s) {
    const LayerWeights& L = m_.layers[static_cast<size_t>(l)];
    s.x_in = x;
    norm(x.data(), r_, d_, L.attn_norm, h.data());
    s.q.resize(at(r_, nq_w_));
    s.k.resize(at(r_, nkv_w_));
    s.v.resize(at(r_, nkv_w_));
    linear(L.wq, h.data(), s.q.data());
    linear(L.wk, h.data(), s.k.data());
    linear(L.wv, h.data(), s.v.data());
    if (!L.q_norm.empty()) {
      s.q_raw = s.q;
      s.k_raw = s.k;
      const float eps = static_cast<float>(c_.norm_eps);
      rms_norm(s.q.data(), r_ * nh_, hd_, L.q_norm, eps, s.q.data(), threads_);
      rms_norm(s.k.data(), r_ * nkv_, hd_, L.k_norm, eps, s.k.data(), threads_);
    }
    for (int64_t b = 0; b < b_; ++b) {
      rope(&s.q[at(b * n_, nq_w_)], n_, nq_w_, nh_, hd_, 0, inv_freq(L), m_.rope);
      rope(&s.k[at(b * n_, nkv_w_)], n_, nkv_w_, nkv_, hd_, 0, inv_freq(L), m_.rope);
    }
    if (m_.rope_mscale != 1.0f) {
      for (float& v : s.q) v *= m_.rope_mscale;
      for (float& v : s.k) v *= m_.rope_mscale;
    }
    s.att.resize(at(r_, nq_w_));
    s.lse.resize(static_cast<size_t>(b_ * nh_ * n_));
    attention(View4::dense(s.q.data(), DType::f32, {b_, n_, nh_, hd_}),
              View4::dense(s.k.data(), DType::f32, {b_, n_, nkv_, hd_}),
              View4::dense(s.v.data(), DType::f32, {b_, n_, nkv_, hd_}),
              MutView4::dense(s.att.data(), {b_, n_, nh_, hd_}), s.lse, attention_options(L));
    if (opt_.after_attention) opt_.after_attention(l, s.att.data(), s.v.data());
    std::vector<float> o(at(r_, d_));
    linear(L.wo, s.att.data(), o.data());
    if (!L.attn_post_norm.empty()) {
      s.o_raw = o;
      norm(o.data(), r_, d_, L.attn_post_norm, o.data());
    }
    add_inplace(x.data(), o.data(), r_ * d_);
    s.x_mid = x;
    norm(x.data(), r_, d_, L.ffn_norm, h.data());
    s.up.resize(at(r_, ff_));
    std::vector<float> act;
    if (L.ffn_gate.n_out() > 0) {
      s.gate.resize(at(r_, ff_));
      linear(L.ffn_gate, h.data(), s.gate.data());
      linear(L.ffn_up, h.data(), s.up.data());
      act = s.gate;
      if (m_.traits->ffn == FfnKind::geglu_tanh) {
        gelu_tanh_mul(act.data(), s.up.data(), r_ * ff_, threads_);
      } else {
        silu_mul(act.data(), s.up.data(), r_ * ff_, threads_);
      }
    } else {
      linear(L.ffn_up, h.data(), s.up.data());
      act = s.up;
      gelu_tanh(act.data(), r_ * ff_, threads_);
    }
    linear(L.ffn_down, act.data(), o.data());
    if (!L.ffn_post_norm.empty()) {
      s.f_raw = o;
      norm(o.data(), r_, d_, L.ffn_post_norm, o.data());
    }
    add_inplace(x.data(), o.data(), r_ * d_);
  }

  // GELU (tanh form) and its derivative at v.
  static void gelu_tanh_and_grad(double v, double& y, double& dy) {
    const double a = 0.7978845608028654, b = 0.044715;
    const double u = a * (v + b * v * v * v);
    const double t = std::tanh(u);
    y = 0.5 * v * (1.0 + t);
    dy = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * a * (1.0 + 3.0 * b * v * v);
  }

  void backward_layer(int l, std::vector<float>& dx, GradientResult& res) {
    const LayerWeights& L = m_.layers[static_cast<size_t>(l)];
    const LayerSaved& s = saved_[static_cast<size_t>(l)];
    const int64_t rd = r_ * d_, rf = r_ * ff_;
    // The MLP: df = dx (the residual), through the post-norm, the down projection, the
    // activation, the gate and up projections and the pre-norm.
    std::vector<float> df(dx);
    if (!L.ffn_post_norm.empty()) {
      norm_backward(s.f_raw.data(), r_, d_, L.ffn_post_norm, dx.data(), df.data(), false);
    }
    std::vector<float> da(static_cast<size_t>(rf));
    L.ffn_down.backward_input(df.data(), r_, d_, da.data(), ff_, false, threads_, &scratch_);
    std::vector<float> dh(static_cast<size_t>(rd));
    // The activation's derivative, an exp or tanh in double per element, by rows over the threads
    // (run serially it held the other threads waiting at every layer).
    const auto by_rows = [&](auto&& row_fn) {
      core::parallel_for_dynamic(r_, rf >= (1 << 15) ? threads_ : 1,
                                 [&](int64_t row, int) { row_fn(row * ff_, (row + 1) * ff_); });
    };
    if (L.ffn_gate.n_out() > 0) {
      const bool geglu = m_.traits->ffn == FfnKind::geglu_tanh;
      std::vector<float> dg(static_cast<size_t>(rf));
      by_rows([&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          const double g = s.gate[static_cast<size_t>(i)], u = s.up[static_cast<size_t>(i)];
          double act, dact;
          if (geglu) {
            gelu_tanh_and_grad(g, act, dact);
          } else {
            const double sig = 1.0 / (1.0 + std::exp(-g));
            act = g * sig;
            dact = sig * (1.0 + g * (1.0 - sig));
          }
          const double a = da[static_cast<size_t>(i)];
          dg[static_cast<size_t>(i)] = static_cast<float>(a * u * dact);
          da[static_cast<size_t>(i)] = static_cast<float>(a * act);  // now d up
        }
      });
      L.ffn_gate.backward_input(dg.data(), r_, ff_, dh.data(), d_, false, threads_, &scratch_);
      L.ffn_up.backward_input(da.data(), r_, ff_, dh.data(), d_, true, threads_, &scratch_);
    } else {
      by_rows([&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          double y, dy;
          gelu_tanh_and_grad(s.up[static_cast<size_t>(i)], y, dy);
          da[static_cast<size_t>(i)] = static_cast<float>(da[static_cast<size_t>(i)] * dy);
        }
      });
      L.ffn_up.backward_input(da.data(), r_, ff_, dh.data(), d_, false, threads_, &scratch_);
    }
    norm_backward(s.x_mid.data(), r_, d_, L.ffn_norm, dh.data(), dx.data(), true);

    // The attention block.
    std::vector<float>& dout = df;  // reused: [R, n_embd]
    if (!L.attn_post_norm.empty()) {
      norm_backward(s.o_raw.data(), r_, d_, L.attn_post_norm, dx.data(), dout.data(), false);
    } else {
      dout = dx;
    }
    std::vector<float> datt(at(r_, nq_w_));
    L.wo.backward_input(dout.data(), r_, d_, datt.data(), nq_w_, false, threads_, &scratch_);
    const AttentionOptions aopt = attention_options(L);
    if (opt_.attention) probability_gradients(l, s, datt, aopt, res);
    std::vector<float> dq(at(r_, nq_w_)), dk(at(r_, nkv_w_)), dv(at(r_, nkv_w_));
    attention_backward(View4::dense(s.q.data(), DType::f32, {b_, n_, nh_, hd_}),
                       View4::dense(s.k.data(), DType::f32, {b_, n_, nkv_, hd_}),
                       View4::dense(s.v.data(), DType::f32, {b_, n_, nkv_, hd_}),
                       View4::dense(s.att.data(), DType::f32, {b_, n_, nh_, hd_}), s.lse,
                       View4::dense(datt.data(), DType::f32, {b_, n_, nh_, hd_}),
                       MutView4::dense(dq.data(), {b_, n_, nh_, hd_}),
                       MutView4::dense(dk.data(), {b_, n_, nkv_, hd_}),
                       MutView4::dense(dv.data(), {b_, n_, nkv_, hd_}), aopt);
    if (m_.rope_mscale != 1.0f) {
      for (float& v : dq) v *= m_.rope_mscale;
      for (float& v : dk) v *= m_.rope_mscale;
    }
    // RoPE rotates each pair by the angle pos · f; its transpose rotates by -pos · f, which is
    // rope() with the frequencies negated (the fp32 angle is negated exactly).
    std::vector<float> back(inv_freq(L));
    for (float& f : back) f = -f;
    for (int64_t b = 0; b < b_; ++b) {
      rope(&dq[at(b * n_, nq_w_)], n_, nq_w_, nh_, hd_, 0, back, m_.rope);
      rope(&dk[at(b * n_, nkv_w_)], n_, nkv_w_, nkv_, hd_, 0, back, m_.rope);
    }
    if (!L.q_norm.empty()) {
      std::vector<float> t(dq.size());
      norm_backward(s.q_raw.data(), r_ * nh_, hd_, L.q_norm, dq.data(), t.data(), false);
      dq.swap(t);
      t.resize(dk.size());
      norm_backward(s.k_raw.data(), r_ * nkv_, hd_, L.k_norm, dk.data(), t.data(), false);
      dk.swap(t);
    }
    L.wq.backward_input(dq.data(), r_, nq_w_, dh.data(), d_, false, threads_, &scratch_);
    L.wk.backward_input(dk.data(), r_, nkv_w_, dh.data(), d_, true, threads_, &scratch_);
    L.wv.backward_input(dv.data(), r_, nkv_w_, dh.data(), d_, true, threads_, &scratch_);
    norm_backward(s.x_in.data(), r_, d_, L.attn_norm, dh.data(), dx.data(), true);
  }

  // Of the last sequence: per head sum_i <datt_i, att_i> (= sum_ij P_ij dP_ij) and, for its last
  // row, dP_j = <datt_(n-1), v_j> and P_j dP_j.
  void probability_gradients(int l, const LayerSaved& s, const std::vector<float>& datt,
                             const AttentionOptions& aopt, GradientResult& res) const {
    const int64_t b = b_ - 1, group = nh_ / nkv_, last = b * n_ + n_ - 1;
    const View4 q = View4::dense(s.q.data(), DType::f32, {b_, n_, nh_, hd_});
    const View4 k = View4::dense(s.k.data(), DType::f32, {b_, n_, nkv_, hd_});
    std::vector<float> p(static_cast<size_t>(n_));
    const int64_t row = n_ - 1;
    for (int64_t h = 0; h < nh_; ++h) {
      double sum = 0;
      for (int64_t i = b * n_; i < b * n_ + n_; ++i) {
        const float* g = &datt[at(i, nq_w_) + static_cast<size_t>(h * hd_)];
        const float* o = &s.att[at(i, nq_w_) + static_cast<size_t>(h * hd_)];
        for (int64_t c = 0; c < hd_; ++c) sum += double(g[c]) * o[c];
      }
      const size_t lh = static_cast<size_t>(l * nh_ + h);
      res.head_sums[lh] = sum;
      attention_probs(q, k, s.lse, b, h, std::span<const int64_t>(&row, 1), p.data(), aopt);
      const float* g = &datt[at(last, nq_w_) + static_cast<size_t>(h * hd_)];
      for (int64_t j = 0; j < n_; ++j) {
        const float* v = &s.v[at(b * n_ + j, nkv_w_) + static_cast<size_t>((h / group) * hd_)];
        double dp = 0;
        for (int64_t c = 0; c < hd_; ++c) dp += double(g[c]) * v[c];
        res.target_grad[lh * static_cast<size_t>(n_) + static_cast<size_t>(j)] =
            static_cast<float>(dp);
        res.target_rows[lh * static_cast<size_t>(n_) + static_cast<size_t>(j)] =
            static_cast<float>(p[static_cast<size_t>(j)] * dp);
      }
    }
  }

  const Model::Impl& m_;
  const ModelConfig& c_;
  const GradientOptions& opt_;
  int64_t n_ = 0, d_ = 0, b_ = 0, r_ = 0, hd_ = 0, nh_ = 0, nkv_ = 0, nq_w_ = 0, nkv_w_ = 0,
          ff_ = 0;
  int threads_ = 1;
  const std::vector<float>* inv_freq_global_ = nullptr;
  std::span<const float> embeddings_;
  std::vector<LayerSaved> saved_;
  std::vector<float> x_last_;  // [B, n_embd] the last row of each sequence before the final norm
  std::vector<float> logits_;  // [B, n_vocab]
  kernels::LinearScratch scratch_;
};

void check_score(const Model& model, const ScoreSpec& spec) {
  const int64_t nv = model.config().n_vocab;
  if (spec.target < 0 || spec.target >= nv) {
    core::throw_invalid("gradients: target token id ", spec.target,
                        " is outside the vocabulary [0, ", nv, ")");
  }
  if (spec.contrast >= nv) {
    core::throw_invalid("gradients: contrast token id ", spec.contrast,
                        " is outside the vocabulary [0, ", nv, ")");
  }
  if (spec.contrast == spec.target) {
    core::throw_invalid("gradients: the contrast token is the target itself (id ", spec.target,
                        "); the score would be 0 whatever the input");
  }
}

}  // namespace

GradientResult embedding_gradients(const Model& model, std::span<const int32_t> tokens,
                                   std::span<const float> embeddings, const ScoreSpec& score,
                                   const GradientOptions& options) {
  check_score(model, score);
  Pass pass(model, tokens, embeddings, options);
  GradientResult res;
  auto t0 = Clock::now();
  double c0 = core::process_cpu_seconds();
  pass.forward(true);
  res.times.forward = seconds_since(t0);
  res.times.forward_cpu = core::process_cpu_seconds() - c0;
  t0 = Clock::now();
  c0 = core::process_cpu_seconds();
  std::vector<float> dlogits;
  res.score = pass.scores(score, &dlogits);
  pass.backward(std::move(dlogits), res);
  res.times.backward = seconds_since(t0);
  res.times.backward_cpu = core::process_cpu_seconds() - c0;
  return res;
}

std::vector<float> token_embeddings(const Model& model, std::span<const int32_t> tokens) {
  const Model::Impl& m = ModelAccess::impl(model);
  const int64_t d = m.config.n_embd;
  std::vector<float> out(tokens.size() * static_cast<size_t>(d));
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= m.config.n_vocab) {
      core::throw_invalid("token_embeddings: token ", i, " is id ", tokens[i],
                          ", outside the vocabulary [0, ", m.config.n_vocab, ")");
    }
    kernels::weight_row_to_f32(m.tok_embd, tokens[i], out.data() + i * static_cast<size_t>(d));
  }
  return out;
}

std::vector<double> embedding_scores(const Model& model, std::span<const int32_t> tokens,
                                     std::span<const float> embeddings, const ScoreSpec& score,
                                     const GradientOptions& options) {
  check_score(model, score);
  Pass pass(model, tokens, embeddings, options);
  pass.forward(false);
  return pass.scores(score, nullptr);
}

std::vector<float> embedding_logits(const Model& model, std::span<const int32_t> tokens,
                                    std::span<const float> embeddings,
                                    const GradientOptions& options) {
  Pass pass(model, tokens, embeddings, options);
  pass.forward(false);
  return pass.logits();
}

}  // namespace qkv::model
