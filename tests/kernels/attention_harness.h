// Random attention problems in several memory layouts, run through a backend and compared with the
// reference (naive, materialised, double accumulation).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/attention_problem.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/cpu/plan.h"
#include "kernels/quant/dequant.h"
#include "kernels/quant/quantize.h"
#include "qkv/attention.h"

namespace qkv::test {

enum class Layout {
  bshd,    // [batch, seq, head, dim], dense (the API's order)
  bhsd,    // [batch, head, seq, dim] storage seen through strides
  gapped,  // rows padded with unused elements, and the last dimension with stride 2
};

struct Case {
  int64_t batch = 1, n_q = 7, n_kv = 7, n_head = 2, n_head_kv = 2, head_dim = 16, head_dim_v = 16;
  DType kv_dtype = DType::f32;
  Layout layout = Layout::bshd;
  float value_range = 1.f;  // q, k, v uniform in [-range, range]
  uint32_t seed = 1;
  AttentionOptions opt;
  // Owned storage for options that point at data.
  std::vector<int32_t> kv_lengths, q_offsets;
  std::vector<float> alibi, additive;
  std::vector<uint8_t> boolean;

  std::string name() const {
    return "b" + std::to_string(batch) + " nq" + std::to_string(n_q) + " nkv" +
           std::to_string(n_kv) + " h" + std::to_string(n_head) + "/" + std::to_string(n_head_kv) +
           " d" + std::to_string(head_dim) + "/" + std::to_string(head_dim_v) + " " +
           std::string(dtype_name(kv_dtype)) + " layout" +
           std::to_string(static_cast<int>(layout)) + (opt.causal ? " causal" : "") +
           (!opt.kv_lengths.empty() ? " kvlen" : "") + (!opt.q_offsets.empty() ? " qoff" : "") +
           (opt.window_left >= 0 || opt.window_right >= 0
                ? " win" + std::to_string(opt.window_left) + "," + std::to_string(opt.window_right)
                : "") +
           (opt.mask.kind == MaskKind::boolean    ? " boolmask"
            : opt.mask.kind == MaskKind::additive ? " addmask"
                                                  : "") +
           (!opt.alibi_slopes.empty() ? " alibi" : "") + (opt.softcap > 0 ? " softcap" : "") +
           (opt.precision == Precision::bf16 ? " bf16mode" : "");
  }
};

// One tensor's storage plus its view.
struct Tensor {
  std::vector<float> f32;
  std::vector<uint16_t> half;
  std::vector<uint8_t> blocks;  // q8_0
  View4 view;
};

inline Tensor make_tensor(std::array<int64_t, 4> shape, DType dt, Layout layout, std::mt19937& rng,
                          float range) {
  // Storage order and strides per layout.
  std::array<int64_t, 4> stride{};
  int64_t size = 0;
  const int64_t B = shape[0], S = shape[1], H = shape[2], D = shape[3];
  switch (layout) {
    case Layout::bshd:
      stride = dense_strides(shape);
      size = B * S * H * D;
      break;
    case Layout::bhsd:
      stride = {H * S * D, D, S * D, 1};
      size = B * H * S * D;
      break;
    case Layout::gapped:
      if (dtype_is_blocked(dt)) {  // blocks run along a unit-stride last dimension: pad whole
        const int64_t row = D + 2 * dtype_block_elems(dt);  // blocks between the rows instead
        stride = {S * H * row, H * row, row, 1};
        size = B * S * H * row;
        break;
      }
      stride = {S * H * (2 * D + 3), H * (2 * D + 3), 2 * D + 3, 2};
      size = B * S * H * (2 * D + 3);
      break;
  }
  std::uniform_real_distribution<float> u(-range, range);
  Tensor t;
  if (dt == DType::f32) {
    t.f32.resize(static_cast<size_t>(size));
    for (auto& x : t.f32) x = u(rng);
    t.view = View4{t.f32.data(), dt, shape, stride};
  } else if (dt == DType::q8_0) {
    // Random values quantized by ggml's reference quantizer (the gaps too: they must never be
    // read). Every block starts at a multiple of 32 elements (dtype.h).
    std::vector<float> x(static_cast<size_t>(size));
    for (auto& v : x) v = u(rng);
    t.blocks.resize(static_cast<size_t>(dtype_bytes(dt, size)));
    kernels::quant::quantize_q8_0(x.data(), size,
                                  reinterpret_cast<kernels::quant::BlockQ8_0*>(t.blocks.data()));
    t.view = View4{t.blocks.data(), dt, shape, stride};
  } else {
    t.half.resize(static_cast<size_t>(size));
    for (auto& x : t.half)
      x = dt == DType::f16 ? core::f32_to_f16(u(rng)) : core::f32_to_bf16(u(rng));
    t.view = View4{t.half.data(), dt, shape, stride};
  }
  return t;
}

// Output with guard elements before, after and (for gapped layouts) between rows.
struct Output {
  static constexpr int64_t kGuard = 64;
  static constexpr float kPoison = -12345.678f;
  std::vector<float> buf;
  MutView4 view;
  std::vector<float> lse;  // with guards too

  Output(std::array<int64_t, 4> shape, Layout layout) {
    const int64_t B = shape[0], S = shape[1], H = shape[2], D = shape[3];
    std::array<int64_t, 4> stride = dense_strides(shape);
    int64_t size = B * S * H * D;
    if (layout == Layout::bhsd) {
      stride = {H * S * D, D, S * D, 1};
    } else if (layout == Layout::gapped) {
      stride = {S * H * (D + 5), H * (D + 5), D + 5, 1};
      size = B * S * H * (D + 5);
    }
    buf.assign(static_cast<size_t>(size + 2 * kGuard), kPoison);
    view = MutView4{buf.data() + kGuard, shape, stride};
    lse.assign(static_cast<size_t>(B * H * S + 2 * kGuard), kPoison);
  }
  // The lse between the guards: [batch, n_head, n_q].
  std::span<float> lse_view() { return {lse.data() + kGuard, lse.size() - 2 * kGuard}; }
  float at(int64_t b, int64_t i, int64_t h, int64_t c) const {
    return view
        .data[b * view.stride[0] + i * view.stride[1] + h * view.stride[2] + c * view.stride[3]];
  }
  // Every element that is not part of the view still holds the poison value.
  bool guards_intact() const {
    std::vector<char> used(buf.size(), 0);
    const auto& s = view.shape;
    for (int64_t b = 0; b < s[0]; ++b)
      for (int64_t i = 0; i < s[1]; ++i)
        for (int64_t h = 0; h < s[2]; ++h)
          for (int64_t c = 0; c < s[3]; ++c)
            used[static_cast<size_t>(kGuard + b * view.stride[0] + i * view.stride[1] +
                                     h * view.stride[2] + c * view.stride[3])] = 1;
    for (size_t n = 0; n < buf.size(); ++n) {
      if (!used[n] && buf[n] != kPoison) return false;
    }
    const int64_t nl = static_cast<int64_t>(lse.size()) - 2 * kGuard;
    for (int64_t n = 0; n < kGuard; ++n) {
      if (lse[n] != kPoison || lse[kGuard + nl + n] != kPoison) return false;
    }
    return true;
  }
};

struct Inputs {
  Tensor q, k, v;
};

inline Inputs make_inputs(const Case& c) {
  std::mt19937 rng(c.seed);
  Inputs in;
  in.q =
      make_tensor({c.batch, c.n_q, c.n_head, c.head_dim}, DType::f32, c.layout, rng, c.value_range);
  in.k = make_tensor({c.batch, c.n_kv, c.n_head_kv, c.head_dim}, c.kv_dtype, c.layout, rng,
                     c.value_range);
  in.v = make_tensor({c.batch, c.n_kv, c.n_head_kv, c.head_dim_v}, c.kv_dtype, c.layout, rng, 1.f);
  return in;
}

// Fills the option data vectors of `c` and points its options at them.
inline void attach_options(Case& c) {
  c.opt.kv_lengths = c.kv_lengths;
  c.opt.q_offsets = c.q_offsets;
  c.opt.alibi_slopes = c.alibi;
  if (!c.additive.empty()) {
    c.opt.mask = AttentionMask{MaskKind::additive, c.additive.data(), c.n_q, c.n_kv, c.n_kv, 1};
  }
  if (!c.boolean.empty()) {
    c.opt.mask = AttentionMask{MaskKind::boolean, c.boolean.data(), c.n_q, c.n_kv, c.n_kv, 1};
  }
}

struct Result {
  double max_out_err = 0;  // max |out - ref| / (1 + |ref|)
  double max_lse_err = 0;  // max |lse - ref| / (1 + |ref|); -inf must match exactly
  bool lse_inf_mismatch = false;
  bool has_nan = false;
  bool guards_ok = true;
};

// Runs `c` through the CPU kernel on `target` with `threads` threads and through the reference.
inline Result run_against_reference(Case c, const kernels::cpu::TargetOps& target, int threads) {
  attach_options(c);
  const Inputs in = make_inputs(c);
  const std::array<int64_t, 4> oshape{c.batch, c.n_q, c.n_head, c.head_dim_v};
  Output fast(oshape, c.layout), ref(oshape, Layout::bshd);
  AttentionOptions fo = c.opt;
  fo.n_threads = threads;
  const auto pf =
      kernels::make_problem(in.q.view, in.k.view, in.v.view, fast.view, fast.lse_view(), fo);
  kernels::attention_cpu_on(pf, target);
  AttentionOptions ro = c.opt;
  // Always exact: for the bf16 mode the distance to it is the error being stated.
  ro.precision = Precision::f32;
  const auto pr =
      kernels::make_problem(in.q.view, in.k.view, in.v.view, ref.view, ref.lse_view(), ro);
  kernels::attention_reference(pr);

  Result r;
  r.guards_ok = fast.guards_intact();
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t i = 0; i < c.n_q; ++i)
      for (int64_t h = 0; h < c.n_head; ++h) {
        for (int64_t d = 0; d < c.head_dim_v; ++d) {
          const double a = fast.at(b, i, h, d), e = ref.at(b, i, h, d);
          if (std::isnan(a)) r.has_nan = true;
          r.max_out_err = std::max(r.max_out_err, std::fabs(a - e) / (1 + std::fabs(e)));
        }
        const int64_t li = (b * c.n_head + h) * c.n_q + i;
        const double a = fast.lse_view()[li], e = ref.lse_view()[li];
        if (std::isnan(a)) r.has_nan = true;
        if (std::isinf(e) || std::isinf(a)) {
          if (a != e) r.lse_inf_mismatch = true;
        } else {
          r.max_lse_err = std::max(r.max_lse_err, std::fabs(a - e) / (1 + std::fabs(e)));
        }
      }
  return r;
}

// The fp32 twin of a q8_0 tensor: the same element offsets (so the same strides), every value
// dequantized by the scalar oracle.
inline Tensor dequantized(const Tensor& t) {
  Tensor f;
  const int64_t n = static_cast<int64_t>(t.blocks.size()) / 34 * 32;
  f.f32.resize(static_cast<size_t>(n));
  kernels::quant::dequantize_q8_0(
      reinterpret_cast<const kernels::quant::BlockQ8_0*>(t.blocks.data()), n, f.f32.data());
  f.view = View4{f.f32.data(), DType::f32, t.view.shape, t.view.stride};
  return f;
}

// Multiplies the scale of every block of a q8_0 tensor by 2^e, e uniform in [-4, 4]: blocks of one
// row then differ by up to 256x, so a kernel that applied one block's scale to another's bytes
// would be far off (uniform random values give blocks of nearly equal scales).
inline void spread_block_scales(Tensor& t, std::mt19937& rng) {
  std::uniform_int_distribution<int> e(-4, 4);
  for (size_t off = 0; off + 34 <= t.blocks.size(); off += 34) {
    uint16_t h;
    std::memcpy(&h, t.blocks.data() + off, 2);
    h = f32_to_f16(std::ldexp(f16_to_f32(h), e(rng)));
    std::memcpy(t.blocks.data() + off, &h, 2);
  }
}

// The SIMD targets this machine can run.
inline std::vector<const kernels::cpu::TargetOps*> runnable_targets() {
  std::vector<const kernels::cpu::TargetOps*> t{&kernels::cpu::target_generic()};
  const std::string_view best = kernels::cpu::target_selected().name;
  if (best == "avx2" || best == "avx512") t.push_back(&kernels::cpu::target_avx2());
  if (best == "avx512") t.push_back(&kernels::cpu::target_avx512());
  return t;
}

}  // namespace qkv::test
