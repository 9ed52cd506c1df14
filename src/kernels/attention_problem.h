// The validated, resolved form of an attention call, shared by every backend.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>

#include "qkv/attention.h"

namespace qkv::kernels {

// Query rows per kv head up to which a call is a decode (the CPU's direct path, kDirectRows in
// cpu/flash_impl.inc, and the scope of AttentionOptions::int8_scores).
inline constexpr int64_t kDecodeRowsMax = 8;

struct AttentionProblem {
  View4 q, k, v;  // see attention.h for the dimension order
  MutView4 out;
  float* lse = nullptr;  // [batch, n_head, n_q] or null (the caller's span, checked)
  AttentionOptions opt;

  int64_t batch = 0, n_q = 0, n_kv = 0, n_head = 0, n_head_kv = 0, head_dim = 0, head_dim_v = 0;
  int64_t group = 1;  // n_head / n_head_kv
  float scale = 1.f;

  // Position of query i of sequence b (attention.h, "Query positions").
  int64_t position(int64_t b, int64_t i) const {
    return (opt.q_offsets.empty() ? n_kv - n_q : opt.q_offsets[static_cast<size_t>(b)]) + i;
  }
  // Number of keys sequence b may attend (kv_lengths, clamped to n_kv).
  int64_t kv_len(int64_t b) const {
    return opt.kv_lengths.empty() ? n_kv : opt.kv_lengths[static_cast<size_t>(b)];
  }

  // The interval [lo, hi) of keys that the interval rules (causal, kv_lengths, window) allow for
  // query i of sequence b. Empty when lo >= hi. The explicit mask may remove more keys.
  void key_range(int64_t b, int64_t i, int64_t* lo, int64_t* hi) const {
    const int64_t pos = position(b, i);
    int64_t l = 0, h = kv_len(b);
    if (opt.causal && pos + 1 < h) h = pos + 1;
    if (opt.window_left >= 0 && pos - opt.window_left > l) l = pos - opt.window_left;
    if (opt.window_right >= 0 && pos + opt.window_right + 1 < h) h = pos + opt.window_right + 1;
    *lo = l;
    *hi = h;
  }

  // Whether the scores come from integer dot products (AttentionOptions::int8_scores): a q8_0 k
  // and at most kDecodeRowsMax query rows per kv head.
  bool int8_scores() const {
    return opt.int8_scores && k.dtype == DType::q8_0 && group * n_q <= kDecodeRowsMax;
  }

  bool has_elementwise() const {
    return opt.mask.kind != MaskKind::none || !opt.alibi_slopes.empty() || opt.softcap > 0.f;
  }
};

// Checks the arguments and resolves sizes; throws InvalidArgument naming what disagrees (lse and
// the options' arrays must be empty or of exactly their documented size).
// `out` may be absent (null data) for callers that need only the problem (attention_probs).
// Backends that take f16/bf16 queries (CUDA) pass any_q_dtype = true.
AttentionProblem make_problem(const View4& q, const View4& k, const View4& v, const MutView4& out,
                              std::span<float> lse, const AttentionOptions& opt,
                              bool need_out = true, bool any_q_dtype = false);

// The score transform for one (query, key) pair after the scaled dot product: soft-cap, ALiBi,
// additive mask, boolean mask. Returns -inf for a masked pair. Used by the reference, by
// attention_probs and by tile edges of the fast kernels.
inline double transform_score(const AttentionProblem& p, int64_t b, int64_t h, int64_t i, int64_t j,
                              double s) {
  const auto& o = p.opt;
  if (o.softcap > 0.f) s = o.softcap * std::tanh(s / o.softcap);
  if (!o.alibi_slopes.empty()) {
    const int64_t d = p.position(b, i) - j;
    s -= static_cast<double>(o.alibi_slopes[static_cast<size_t>(h)]) *
         static_cast<double>(d < 0 ? -d : d);
  }
  if (o.mask.kind == MaskKind::additive) {
    s += static_cast<const float*>(o.mask.data)[i * o.mask.stride_q + j * o.mask.stride_kv];
  } else if (o.mask.kind == MaskKind::boolean) {
    if (!static_cast<const uint8_t*>(o.mask.data)[i * o.mask.stride_q + j * o.mask.stride_kv]) {
      return -std::numeric_limits<double>::infinity();
    }
  }
  return s;
}

// Throws InvalidArgument unless `lse` holds exactly batch * n_head * n_q values ("what" names the
// caller); for the lse a backward or probs call reads.
void check_lse_size(const char* what, const AttentionProblem& p, size_t lse_size);

// "[a, b, c, d]", for error messages.
std::string shape_str(const std::array<int64_t, 4>& s);

// The int8-scores mode's query rounding: x[0, n) (n a multiple of 32) in blocks of 32, as the
// linear layers' int8 mode rounds activations (quant::quantize_act_reference for Q8_0): d[n / 32]
// and q[n] in [-127, 127].
void round_q8_blocks(const float* x, int64_t n, float* d, int8_t* q);

// The reference: naive and materialised, double accumulation.
void attention_reference(const AttentionProblem& p);

}  // namespace qkv::kernels
