// GPT-2 forward with saved activations and its backward pass (see gpt.h for the equations).
// Matrix products go to the GEMM library (kernels/cpu/linear_gemm.h), attention and its gradient
// to qkv::attention / qkv::attention_backward (the flash-style kernels: only the per-row
// log-sum-exp is kept, never T × T probabilities). Reductions over rows (bias and layer-norm
// gradients, the loss) are summed in a fixed chunk order so that a run is deterministic for a
// given thread count.
#include "train/gpt.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>

#include "core/error.h"
#include "core/parallel.h"
#include "kernels/cpu/linear_gemm.h"
#include "model/arch.h"
#include "model/blocks.h"
#include "qkv/attention.h"
#include "train/random.h"

namespace qkv::learn {

void validate(const GptConfig& c) {
  auto check = [](const char* name, int64_t v, int64_t hi) {
    if (v < 1 || v > hi)
      core::throw_invalid("model: ", name, " = ", v, " is outside [1, ", hi, "]");
  };
  check("n_vocab", c.n_vocab, int64_t{1} << 20);
  check("n_ctx", c.n_ctx, 1 << 16);
  check("n_embd", c.n_embd, 1 << 14);
  check("n_head", c.n_head, 1 << 10);
  check("n_layer", c.n_layer, 1 << 10);
  if (c.n_embd % c.n_head != 0) {
    core::throw_invalid("model: n_embd = ", c.n_embd, " is not a multiple of n_head = ", c.n_head);
  }
}

namespace {

// Pointers to one layer's tensors inside a parameter-sized buffer (params or grads).
struct LayerPtrs {
  float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b;
  float *ln2_w, *ln2_b, *up_w, *up_b, *down_w, *down_b;
};

// The same order as the tensor list built in the constructor.
constexpr int kLayerTensors = 12;

// Rows per chunk of the row-parallel loops; reductions sum chunk partials in chunk order.
constexpr int64_t kRowChunk = 32;

int64_t n_chunks(int64_t rows) {
  return (rows + kRowChunk - 1) / kRowChunk;
}

template <typename Fn>
void for_row_chunks(int64_t rows, int threads, Fn&& fn) {
  core::parallel_for_dynamic(n_chunks(rows), threads, [&](int64_t c, int) {
    const int64_t r0 = c * kRowChunk;
    fn(c, r0, std::min(rows, r0 + kRowChunk));
  });
}

// y[rows, C] = layer_norm(x) * w + b; keeps mean and rstd per row.
void layer_norm_forward(const float* x, const float* w, const float* b, int64_t rows, int64_t C,
                        float* y, float* mean, float* rstd, int threads) {
  for_row_chunks(rows, threads, [&](int64_t, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * C;
      float m = 0;
      for (int64_t i = 0; i < C; ++i) m += xr[i];
      m /= static_cast<float>(C);
      float v = 0;
      for (int64_t i = 0; i < C; ++i) v += (xr[i] - m) * (xr[i] - m);
      v /= static_cast<float>(C);
      const float s = 1.0f / std::sqrt(v + kLayerNormEps);
      float* yr = y + r * C;
      for (int64_t i = 0; i < C; ++i) yr[i] = (xr[i] - m) * s * w[i] + b[i];
      mean[r] = m;
      rstd[r] = s;
    }
  });
}

// dx[rows, C] += layer-norm backward; dw, db += their gradients (chunk partials in `scratch`,
// 2 * n_chunks(rows) * C floats, summed in chunk order).
void layer_norm_backward(const float* dy, const float* x, const float* mean, const float* rstd,
                         const float* w, int64_t rows, int64_t C, float* dx, float* dw, float* db,
                         std::vector<float>& scratch, int threads) {
  const int64_t chunks = n_chunks(rows);
  scratch.assign(static_cast<size_t>(2 * chunks * C), 0.f);
  for_row_chunks(rows, threads, [&](int64_t c, int64_t r0, int64_t r1) {
    float* pw = scratch.data() + 2 * c * C;
    float* pb = pw + C;
    for (int64_t r = r0; r < r1; ++r) {
      const float* dyr = dy + r * C;
      const float* xr = x + r * C;
      const float m = mean[r], s = rstd[r];
      float sum_g = 0, sum_gx = 0;
      for (int64_t i = 0; i < C; ++i) {
        const float xhat = (xr[i] - m) * s;
        const float g = dyr[i] * w[i];
        sum_g += g;
        sum_gx += g * xhat;
        pw[i] += dyr[i] * xhat;
        pb[i] += dyr[i];
      }
      const float mg = sum_g / static_cast<float>(C), mgx = sum_gx / static_cast<float>(C);
      float* dxr = dx + r * C;
      for (int64_t i = 0; i < C; ++i) {
        const float xhat = (xr[i] - m) * s;
        dxr[i] += s * (dyr[i] * w[i] - mg - xhat * mgx);
      }
    }
  });
  for (int64_t c = 0; c < chunks; ++c) {
    const float* pw = scratch.data() + 2 * c * C;
    for (int64_t i = 0; i < C; ++i) {
      dw[i] += pw[i];
      db[i] += pw[C + i];
    }
  }
}

// db[cols] += Σ_rows dy[rows, cols], deterministic.
void bias_backward(const float* dy, int64_t rows, int64_t cols, float* db,
                   std::vector<float>& scratch, int threads) {
  const int64_t chunks = n_chunks(rows);
  scratch.assign(static_cast<size_t>(chunks * cols), 0.f);
  for_row_chunks(rows, threads, [&](int64_t c, int64_t r0, int64_t r1) {
    float* p = scratch.data() + c * cols;
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t i = 0; i < cols; ++i) p[i] += dy[r * cols + i];
  });
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t i = 0; i < cols; ++i) db[i] += scratch[static_cast<size_t>(c * cols + i)];
}

// y[m, n] = x[m, k] · w[n, k]ᵀ + b
void linear_forward(const float* x, const float* w, const float* b, int64_t m, int64_t n, int64_t k,
                    float* y, int threads) {
  kernels::cpu::sgemm_nt(m, n, k, x, k, w, k, y, n, threads);
  if (!b) return;
  for_row_chunks(m, threads, [&](int64_t, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t i = 0; i < n; ++i) y[r * n + i] += b[i];
  });
}

// From dy[m, n] of y = x · wᵀ + b: dx[m, k] (= or += dy · w), dw[n, k] += dyᵀ · x, db += Σ dy.
void linear_backward(const float* dy, const float* x, const float* w, int64_t m, int64_t n,
                     int64_t k, float* dx, bool accumulate_dx, float* dw, float* db,
                     std::vector<float>& scratch, int threads) {
  if (dx) {
    kernels::cpu::sgemm(false, false, m, k, n, 1.f, dy, n, w, k, accumulate_dx ? 1.f : 0.f, dx, k,
                        threads);
  }
  kernels::cpu::sgemm(true, false, n, k, m, 1.f, dy, n, x, k, 1.f, dw, k, threads);
  if (db) bias_backward(dy, m, n, db, scratch, threads);
}

}  // namespace

// Everything forward() keeps for backward(), and the backward's scratch. [BT, X] = [B*T, X].
struct Gpt::Activations {
  struct Layer {
    std::vector<float> ln1, ln1_mean, ln1_rstd;  // [BT, C], [BT], [BT]
    std::vector<float> qkv;                      // [BT, 3C]: q | k | v, heads of D inside each
    std::vector<float> att;                      // [BT, C]   attention output, heads concatenated
    std::vector<float> lse;                      // [B, H, T]
    std::vector<float> mid;                      // [BT, C]   x + attention branch
    std::vector<float> ln2, ln2_mean, ln2_rstd;  // [BT, C], [BT], [BT]
    std::vector<float> up;                       // [BT, F]   before GELU
    std::vector<float> act;                      // [BT, F]   after GELU
  };
  std::vector<std::vector<float>> res;  // L + 1 of [BT, C]: the residual stream between layers
  std::vector<Layer> layers;
  std::vector<float> lnf, lnf_mean, lnf_rstd;  // [BT, C], [BT], [BT]
  std::vector<float> logits;                   // [BT, V]; after forward: d loss / d logits
  std::vector<float> row_loss;                 // [BT]
  // Backward scratch.
  std::vector<float> d_res, d_mid, d_ln, d_att, d_qkv, d_up, scratch;
};

void Gpt::ActivationsDeleter::operator()(Activations* a) const {
  delete a;
}

ModelConfig GptConfig::model_config() const {
  ModelConfig c;
  c.architecture = "gpt2";
  c.n_vocab = n_vocab;
  c.n_ctx = n_ctx;
  c.n_embd = n_embd;
  c.n_layer = n_layer;
  c.n_head = n_head;
  c.n_head_kv = n_head;
  c.head_dim = head_dim();
  c.n_ff = n_ff();
  c.norm_eps = kLayerNormEps;
  c.tied_embeddings = true;
  return c;
}

Gpt::Gpt(const GptConfig& config) : config_(config) {
  validate(config_);
  int64_t offset = 0;
  auto add = [&](std::string name, std::vector<int64_t> shape, bool decay) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    tensors_.push_back({std::move(name), std::move(shape), offset, n, decay});
    offset += n;
  };
  // GPT-2's tensor list (model/arch.cpp), the one the loader binds: the saved model is a GGUF
  // that `qkv` and llama.cpp read. Matrices get weight decay; norms and biases do not.
  for (const model::GgufTensorPlan& t :
       model::gguf_tensor_plan(Architecture::gpt2, config_.model_config())) {
    add(t.name, t.shape, t.shape.size() == 2);
  }
  params_.assign(static_cast<size_t>(offset), 0.f);
  grads_.assign(static_cast<size_t>(offset), 0.f);
}

const ParamTensor& Gpt::tensor(const std::string& name) const {
  for (const ParamTensor& t : tensors_)
    if (t.name == name) return t;
  core::throw_invalid("model: no tensor named ", name);
}

namespace {
LayerPtrs layer_ptrs(float* base, const std::vector<ParamTensor>& t, int64_t l) {
  const size_t first = 2 + static_cast<size_t>(l) * kLayerTensors;
  auto at = [&](size_t i) { return base + t[first + i].offset; };
  return {at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7), at(8), at(9), at(10), at(11)};
}
}  // namespace

void Gpt::init_weights(uint64_t seed) {
  const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(config_.n_layer));
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const ParamTensor& t = tensors_[i];
    float* p = params_.data() + t.offset;
    const bool is_norm_weight = t.name.find("norm.weight") != std::string::npos;
    if (t.shape.size() == 1) {
      std::fill(p, p + t.size, is_norm_weight ? 1.f : 0.f);
      continue;
    }
    const bool residual = t.name.find("attn_output.weight") != std::string::npos ||
                          t.name.find("ffn_down.weight") != std::string::npos;
    Rng rng(seed, i);
    const double std = residual ? residual_std : 0.02;
    for (int64_t e = 0; e < t.size; ++e) p[e] = static_cast<float>(std * rng.normal());
  }
}

void Gpt::zero_grad() {
  std::fill(grads_.begin(), grads_.end(), 0.f);
}

double Gpt::forward(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T,
                    int n_threads) {
  const int64_t C = config_.n_embd, F = config_.n_ff(), V = config_.n_vocab;
  const int64_t H = config_.n_head, D = config_.head_dim(), L = config_.n_layer;
  if (B < 1 || T < 1 || T > config_.n_ctx) {
    core::throw_invalid("model: batch ", B, " x sequence ", T, " (sequence must be in [1, ",
                        config_.n_ctx, "], the context length)");
  }
  const int64_t BT = B * T;
  const int threads = core::resolve_threads(n_threads);
  for (int64_t i = 0; i < BT; ++i) {
    if (tokens[i] < 0 || tokens[i] >= V) {
      core::throw_invalid("model: token id ", tokens[i], " at position ", i, " is outside [0, ", V,
                          ")");
    }
    if (targets && targets[i] >= V) {
      core::throw_invalid("model: target id ", targets[i], " at position ", i, " is outside [0, ",
                          V, ")");
    }
  }
  B_ = B;
  T_ = T;
  tokens_.assign(tokens, tokens + BT);
  if (!acts_) acts_.reset(new Activations);
  Activations& a = *acts_;
  auto size = [](std::vector<float>& v, int64_t n) { v.resize(static_cast<size_t>(n)); };
  a.res.resize(static_cast<size_t>(L + 1));
  a.layers.resize(static_cast<size_t>(L));
  for (auto& r : a.res) size(r, BT * C);

  // Embeddings: res[0] = wte[token] + wpe[t].
  const float* wte = params_.data() + tensors_[0].offset;
  const float* wpe = params_.data() + tensors_[1].offset;
  for (int64_t i = 0; i < BT; ++i) {
    const float* te = wte + static_cast<int64_t>(tokens[i]) * C;
    const float* pe = wpe + (i % T) * C;
    float* o = a.res[0].data() + i * C;
    for (int64_t c = 0; c < C; ++c) o[c] = te[c] + pe[c];
  }

  AttentionOptions opt;
  opt.causal = true;
  opt.n_threads = threads;
  for (int64_t l = 0; l < L; ++l) {
    Activations::Layer& y = a.layers[static_cast<size_t>(l)];
    const LayerPtrs w = layer_ptrs(params_.data(), tensors_, l);
    size(y.ln1, BT * C), size(y.ln1_mean, BT), size(y.ln1_rstd, BT);
    size(y.qkv, BT * 3 * C), size(y.att, BT * C), size(y.lse, B * H * T), size(y.mid, BT * C);
    size(y.ln2, BT * C), size(y.ln2_mean, BT), size(y.ln2_rstd, BT);
    size(y.up, BT * F), size(y.act, BT * F);
    const float* x = a.res[static_cast<size_t>(l)].data();

    layer_norm_forward(x, w.ln1_w, w.ln1_b, BT, C, y.ln1.data(), y.ln1_mean.data(),
                       y.ln1_rstd.data(), threads);
    linear_forward(y.ln1.data(), w.qkv_w, w.qkv_b, BT, 3 * C, C, y.qkv.data(), threads);
    // q, k, v: [B, T, H, D] views into the fused rows.
    const std::array<int64_t, 4> shape{B, T, H, D}, stride{T * 3 * C, 3 * C, D, 1};
    const View4 q{y.qkv.data(), DType::f32, shape, stride};
    const View4 k{y.qkv.data() + C, DType::f32, shape, stride};
    const View4 v{y.qkv.data() + 2 * C, DType::f32, shape, stride};
    attention(q, k, v, MutView4::dense(y.att.data(), shape), y.lse, opt);
    linear_forward(y.att.data(), w.proj_w, w.proj_b, BT, C, C, y.mid.data(), threads);
    for (int64_t i = 0; i < BT * C; ++i) y.mid[static_cast<size_t>(i)] += x[i];

    layer_norm_forward(y.mid.data(), w.ln2_w, w.ln2_b, BT, C, y.ln2.data(), y.ln2_mean.data(),
                       y.ln2_rstd.data(), threads);
    linear_forward(y.ln2.data(), w.up_w, w.up_b, BT, F, C, y.up.data(), threads);
    std::copy(y.up.begin(), y.up.end(), y.act.begin());
    model::gelu_tanh(y.act.data(), BT * F, threads);
    float* out = a.res[static_cast<size_t>(l + 1)].data();
    linear_forward(y.act.data(), w.down_w, w.down_b, BT, C, F, out, threads);
    for (int64_t i = 0; i < BT * C; ++i) out[i] += y.mid[static_cast<size_t>(i)];
  }

  const float* lnf_w = params_.data() + tensors_[tensors_.size() - 2].offset;
  const float* lnf_b = params_.data() + tensors_[tensors_.size() - 1].offset;
  size(a.lnf, BT * C), size(a.lnf_mean, BT), size(a.lnf_rstd, BT);
  layer_norm_forward(a.res[static_cast<size_t>(L)].data(), lnf_w, lnf_b, BT, C, a.lnf.data(),
                     a.lnf_mean.data(), a.lnf_rstd.data(), threads);
  size(a.logits, BT * V);
  kernels::cpu::sgemm_nt(BT, V, C, a.lnf.data(), C, wte, C, a.logits.data(), V, threads);

  logits_are_gradient_ = targets != nullptr;
  if (!targets) return 0.0;  // logits() keeps the logits
  // Cross-entropy; the logits are replaced by d(mean loss)/d(logits) = (softmax - onehot) / N.
  int64_t n_targets = 0;
  for (int64_t i = 0; i < BT; ++i) n_targets += targets[i] >= 0;
  const float inv_n = n_targets > 0 ? 1.f / static_cast<float>(n_targets) : 0.f;
  size(a.row_loss, BT);
  for_row_chunks(BT, threads, [&](int64_t, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* z = a.logits.data() + r * V;
      float m = z[0];
      for (int64_t i = 1; i < V; ++i) m = std::max(m, z[i]);
      const int32_t t = targets[r];
      // From the logit itself, not log(exp(...)): a target far below the max underflows to 0.
      const double target_logit = t >= 0 ? double(z[t]) - double(m) : 0.0;
      double sum = 0;
      for (int64_t i = 0; i < V; ++i) {
        z[i] = std::exp(z[i] - m);
        sum += z[i];
      }
      a.row_loss[static_cast<size_t>(r)] =
          t >= 0 ? static_cast<float>(std::log(sum) - target_logit) : 0.f;
      const float scale = t >= 0 ? inv_n / static_cast<float>(sum) : 0.f;
      for (int64_t i = 0; i < V; ++i) z[i] *= scale;
      if (t >= 0) z[t] -= inv_n;
    }
  });
  double loss = 0;
  for (float x : a.row_loss) loss += x;
  return n_targets > 0 ? loss / static_cast<double>(n_targets) : 0.0;
}

const float* Gpt::logits() const {
  if (!acts_ || logits_are_gradient_ || acts_->logits.empty()) {
    core::throw_invalid("model: logits() needs a forward() without targets before it");
  }
  return acts_->logits.data();
}

void Gpt::backward(int n_threads) {
  if (!acts_ || !logits_are_gradient_) {
    core::throw_invalid("model: backward() needs a forward() with targets before it");
  }
  Activations& a = *acts_;
  const int64_t C = config_.n_embd, F = config_.n_ff(), V = config_.n_vocab;
  const int64_t H = config_.n_head, D = config_.head_dim(), L = config_.n_layer;
  const int64_t B = B_, T = T_, BT = B * T;
  const int threads = core::resolve_threads(n_threads);
  auto size = [](std::vector<float>& v, int64_t n) { v.assign(static_cast<size_t>(n), 0.f); };
  size(a.d_res, BT * C);
  size(a.d_mid, BT * C);
  size(a.d_ln, BT * C);
  size(a.d_att, BT * C);
  size(a.d_qkv, BT * 3 * C);
  size(a.d_up, BT * F);

  float* g = grads_.data();
  const float* wte = params_.data() + tensors_[0].offset;
  float* d_wte = g + tensors_[0].offset;
  float* d_wpe = g + tensors_[1].offset;

  // Tied head: logits = lnf · wteᵀ.
  kernels::cpu::sgemm(false, false, BT, C, V, 1.f, a.logits.data(), V, wte, C, 0.f, a.d_ln.data(),
                      C, threads);
  kernels::cpu::sgemm(true, false, V, C, BT, 1.f, a.logits.data(), V, a.lnf.data(), C, 1.f, d_wte,
                      C, threads);
  const ParamTensor& lnf_w = tensors_[tensors_.size() - 2];
  const ParamTensor& lnf_b = tensors_[tensors_.size() - 1];
  layer_norm_backward(a.d_ln.data(), a.res[static_cast<size_t>(L)].data(), a.lnf_mean.data(),
                      a.lnf_rstd.data(), params_.data() + lnf_w.offset, BT, C, a.d_res.data(),
                      g + lnf_w.offset, g + lnf_b.offset, a.scratch, threads);

  AttentionOptions opt;
  opt.causal = true;
  opt.n_threads = threads;
  for (int64_t l = L - 1; l >= 0; --l) {
    Activations::Layer& y = a.layers[static_cast<size_t>(l)];
    const LayerPtrs w = layer_ptrs(params_.data(), tensors_, l);
    const LayerPtrs dw = layer_ptrs(g, tensors_, l);
    const float* x = a.res[static_cast<size_t>(l)].data();

    // MLP branch: out = mid + down(gelu(up(ln2(mid)))); d_res holds d out.
    linear_backward(a.d_res.data(), y.act.data(), w.down_w, BT, C, F, a.d_up.data(), false,
                    dw.down_w, dw.down_b, a.scratch, threads);
    model::gelu_tanh_backward(y.up.data(), a.d_up.data(), BT * F, threads);
    linear_backward(a.d_up.data(), y.ln2.data(), w.up_w, BT, F, C, a.d_ln.data(), false, dw.up_w,
                    dw.up_b, a.scratch, threads);
    a.d_mid = a.d_res;
    layer_norm_backward(a.d_ln.data(), y.mid.data(), y.ln2_mean.data(), y.ln2_rstd.data(), w.ln2_w,
                        BT, C, a.d_mid.data(), dw.ln2_w, dw.ln2_b, a.scratch, threads);

    // Attention branch: mid = x + proj(attention(qkv(ln1(x)))).
    linear_backward(a.d_mid.data(), y.att.data(), w.proj_w, BT, C, C, a.d_att.data(), false,
                    dw.proj_w, dw.proj_b, a.scratch, threads);
    const std::array<int64_t, 4> shape{B, T, H, D}, stride{T * 3 * C, 3 * C, D, 1};
    const View4 q{y.qkv.data(), DType::f32, shape, stride};
    const View4 k{y.qkv.data() + C, DType::f32, shape, stride};
    const View4 v{y.qkv.data() + 2 * C, DType::f32, shape, stride};
    const View4 out = View4::dense(y.att.data(), DType::f32, shape);
    const View4 d_out = View4::dense(a.d_att.data(), DType::f32, shape);
    attention_backward(q, k, v, out, y.lse, d_out, MutView4{a.d_qkv.data(), shape, stride},
                       MutView4{a.d_qkv.data() + C, shape, stride},
                       MutView4{a.d_qkv.data() + 2 * C, shape, stride}, opt);
    linear_backward(a.d_qkv.data(), y.ln1.data(), w.qkv_w, BT, 3 * C, C, a.d_ln.data(), false,
                    dw.qkv_w, dw.qkv_b, a.scratch, threads);
    a.d_res = a.d_mid;
    layer_norm_backward(a.d_ln.data(), x, y.ln1_mean.data(), y.ln1_rstd.data(), w.ln1_w, BT, C,
                        a.d_res.data(), dw.ln1_w, dw.ln1_b, a.scratch, threads);
  }

  // Embeddings (sequential: tokens repeat, so rows of d_wte are shared).
  for (int64_t i = 0; i < BT; ++i) {
    const float* d = a.d_res.data() + i * C;
    float* te = d_wte + static_cast<int64_t>(tokens_[static_cast<size_t>(i)]) * C;
    float* pe = d_wpe + (i % T) * C;
    for (int64_t c = 0; c < C; ++c) {
      te[c] += d[c];
      pe[c] += d[c];
    }
  }
}

}  // namespace qkv::learn
