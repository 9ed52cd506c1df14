#include "kernels/attention_problem.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "kernels/quant/dot_int8.h"

namespace qkv::kernels {
namespace {

using core::throw_invalid;

void check_view(const char* name, const std::array<int64_t, 4>& shape,
                const std::array<int64_t, 4>& stride, const void* data) {
  if (!data) throw_invalid("attention: ", name, ".data is null");
  for (int d = 0; d < 4; ++d) {
    if (shape[d] < 0)
      throw_invalid("attention: ", name, ".shape[", d, "] = ", shape[d], " is negative");
    if (stride[d] < 0)
      throw_invalid("attention: ", name, ".stride[", d, "] = ", stride[d], " is negative");
  }
}

// An optional per-sequence or per-head array of the options: empty, or exactly `want` values.
void check_array_size(const char* name, const char* dim, size_t size, int64_t want) {
  if (size != 0 && static_cast<int64_t>(size) != want) {
    throw_invalid("attention: options.", name, " has ", size, " values, expected ", dim, " = ",
                  want, " (or none)");
  }
}

// A view of a block type (dtype.h): whole blocks along the last dimension, rows on block starts.
void check_blocked_view(const char* name, const View4& t) {
  const int64_t block = dtype_block_elems(t.dtype);
  if (t.stride[3] != 1 && t.shape[3] > 1) {
    throw_invalid("attention: ", name, " is ", dtype_name(t.dtype), ", whose blocks run along ",
                  "the last dimension: its stride[3] must be 1, got ", t.stride[3]);
  }
  if (t.shape[3] % block != 0) {
    throw_invalid("attention: ", name, " is ", dtype_name(t.dtype), " (blocks of ", block,
                  " values) but its head_dim ", t.shape[3], " is not a multiple of ", block);
  }
  for (int d = 0; d < 3; ++d) {
    if (t.stride[d] % block != 0) {
      throw_invalid("attention: ", name, " is ", dtype_name(t.dtype), ": its stride[", d,
                    "] = ", t.stride[d], " must be a multiple of the block size ", block,
                    " so that every row starts on a block");
    }
  }
}

}  // namespace

void check_lse_size(const char* what, const AttentionProblem& p, size_t lse_size) {
  const int64_t want = p.batch * p.n_head * p.n_q;
  if (static_cast<int64_t>(lse_size) != want) {
    throw_invalid(what, ": lse has ", lse_size,
                  " values, expected batch * n_head * n_q = ", p.batch, " * ", p.n_head, " * ",
                  p.n_q, " = ", want);
  }
}

std::string shape_str(const std::array<int64_t, 4>& s) {
  return core::concat("[", s[0], ", ", s[1], ", ", s[2], ", ", s[3], "]");
}

AttentionProblem make_problem(const View4& q, const View4& k, const View4& v, const MutView4& out,
                              std::span<float> lse, const AttentionOptions& opt, bool need_out,
                              bool any_q_dtype) {
  AttentionProblem p;
  p.q = q;
  p.k = k;
  p.v = v;
  p.out = out;
  p.lse = lse.empty() ? nullptr : lse.data();
  p.opt = opt;
  check_view("q", q.shape, q.stride, q.data);
  check_view("k", k.shape, k.stride, k.data);
  check_view("v", v.shape, v.stride, v.data);
  if (need_out) check_view("out", out.shape, out.stride, out.data);
  if (!any_q_dtype && q.dtype != DType::f32)
    throw_invalid("attention: q must be f32, got ", dtype_name(q.dtype));
  if (k.dtype != v.dtype) {
    throw_invalid("attention: k and v must have the same dtype, got k ", dtype_name(k.dtype),
                  " and v ", dtype_name(v.dtype));
  }
  if (dtype_is_blocked(k.dtype)) {
    check_blocked_view("k", k);
    check_blocked_view("v", v);
  }
  p.batch = q.shape[0];
  p.n_q = q.shape[1];
  p.n_head = q.shape[2];
  p.head_dim = q.shape[3];
  p.n_kv = k.shape[1];
  p.n_head_kv = k.shape[2];
  p.head_dim_v = v.shape[3];
  if (k.shape[0] != p.batch || v.shape[0] != p.batch) {
    throw_invalid("attention: batch sizes disagree: q ", p.batch, ", k ", k.shape[0], ", v ",
                  v.shape[0]);
  }
  if (v.shape[1] != p.n_kv) {
    throw_invalid("attention: k has n_kv = ", p.n_kv, " keys but v has ", v.shape[1], " (k ",
                  shape_str(k.shape), ", v ", shape_str(v.shape), ")");
  }
  if (v.shape[2] != p.n_head_kv) {
    throw_invalid("attention: k has n_head_kv = ", p.n_head_kv, " heads but v has ", v.shape[2]);
  }
  if (k.shape[3] != p.head_dim) {
    throw_invalid("attention: q head_dim = ", p.head_dim, " but k head_dim = ", k.shape[3], " (q ",
                  shape_str(q.shape), ", k ", shape_str(k.shape), ")");
  }
  if (p.head_dim == 0 || p.head_dim_v == 0) {
    throw_invalid("attention: head_dim (", p.head_dim, ") and head_dim_v (", p.head_dim_v,
                  ") must be positive");
  }
  if (p.n_head_kv == 0 || p.n_head % p.n_head_kv != 0) {
    throw_invalid("attention: n_head = ", p.n_head,
                  " must be a positive multiple of n_head_kv = ", p.n_head_kv, " (q ",
                  shape_str(q.shape), ", k ", shape_str(k.shape), ")");
  }
  p.group = p.n_head / p.n_head_kv;
  if (need_out) {
    const std::array<int64_t, 4> want{p.batch, p.n_q, p.n_head, p.head_dim_v};
    if (out.shape != want) {
      throw_invalid("attention: out shape ", shape_str(out.shape), " should be ", shape_str(want),
                    " = [batch, n_q, n_head, head_dim_v]");
    }
  }
  if (opt.scale < 0.f || !std::isfinite(opt.scale)) {
    throw_invalid("attention: scale = ", opt.scale,
                  " must be finite and >= 0 (0 = 1/sqrt(head_dim))");
  }
  p.scale = opt.scale > 0.f ? opt.scale
                            : static_cast<float>(1.0 / std::sqrt(static_cast<double>(p.head_dim)));
  if (opt.softcap < 0.f || !std::isfinite(opt.softcap)) {
    throw_invalid("attention: softcap = ", opt.softcap, " must be finite and >= 0 (0 = off)");
  }
  if (opt.window_left < -1 || opt.window_right < -1) {
    throw_invalid("attention: window_left = ", opt.window_left,
                  ", window_right = ", opt.window_right,
                  ": each must be >= 0, or -1 for unbounded");
  }
  if (!lse.empty()) check_lse_size("attention", p, lse.size());
  check_array_size("kv_lengths", "batch", opt.kv_lengths.size(), p.batch);
  check_array_size("q_offsets", "batch", opt.q_offsets.size(), p.batch);
  check_array_size("alibi_slopes", "n_head", opt.alibi_slopes.size(), p.n_head);
  if (!opt.kv_lengths.empty()) {
    for (int64_t b = 0; b < p.batch; ++b) {
      if (opt.kv_lengths[static_cast<size_t>(b)] < 0 ||
          opt.kv_lengths[static_cast<size_t>(b)] > p.n_kv) {
        throw_invalid("attention: kv_lengths[", b, "] = ", opt.kv_lengths[static_cast<size_t>(b)],
                      " is outside [0, n_kv = ", p.n_kv, "]");
      }
    }
  }
  if (opt.mask.kind != MaskKind::none) {
    const auto& m = opt.mask;
    if (!m.data) throw_invalid("attention: mask.data is null but mask.kind is set");
    if (m.n_q != p.n_q || m.n_kv != p.n_kv) {
      throw_invalid("attention: mask is [", m.n_q, ", ", m.n_kv,
                    "] but the problem is [n_q = ", p.n_q, ", n_kv = ", p.n_kv, "]");
    }
    if (m.stride_q < 0 || m.stride_kv < 0) {
      throw_invalid("attention: mask strides (", m.stride_q, ", ", m.stride_kv, ") must be >= 0");
    }
  }
  if (opt.n_threads < 0) throw_invalid("attention: n_threads = ", opt.n_threads, " must be >= 0");
  if (opt.int8_scores && opt.precision != Precision::f32) {
    throw_invalid("attention: int8_scores needs precision f32 (it rounds q to int8 blocks itself);",
                  " got precision bf16");
  }
  return p;
}

void round_q8_blocks(const float* x, int64_t n, float* d, int8_t* q) {
  // quantize_act: AVX2 where the CPU has it, the same bits as quantize_act_reference (5% of a
  // decode of 512 keys in cache took the scalar rounding); 8 blocks at a time.
  quant::ActBlock32 a[8];
  for (int64_t b0 = 0; b0 < n / quant::kQK; b0 += 8) {
    const int64_t nb = std::min<int64_t>(8, n / quant::kQK - b0);
    quant::quantize_act(quant::QuantType::q8_0, x + b0 * quant::kQK, nb * quant::kQK, a);
    for (int64_t b = 0; b < nb; ++b) {
      d[b0 + b] = a[b].d;
      std::copy(a[b].q, a[b].q + quant::kQK, q + (b0 + b) * quant::kQK);
    }
  }
}

void attention_reference(const AttentionProblem& p) {
  const double neg_inf = -std::numeric_limits<double>::infinity();
  std::vector<double> s(static_cast<size_t>(p.n_kv));
  std::vector<double> acc(static_cast<size_t>(p.head_dim_v));
  // The int8-scores mode: the scaled query row rounded to blocks (qd, q8), scores from the exact
  // integer block sums weighted by d_q d_k in double.
  const bool int8 = p.int8_scores();
  std::vector<float> qs(static_cast<size_t>(p.head_dim)), qd(static_cast<size_t>(p.head_dim / 32));
  std::vector<int8_t> q8(static_cast<size_t>(p.head_dim));
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.n_head; ++h) {
      const int64_t hk = h / p.group;
      for (int64_t i = 0; i < p.n_q; ++i) {
        int64_t lo, hi;
        p.key_range(b, i, &lo, &hi);
        double m = neg_inf;
        if (int8) {
          for (int64_t c = 0; c < p.head_dim; ++c) qs[c] = view_element(p.q, b, i, h, c) * p.scale;
          round_q8_blocks(qs.data(), p.head_dim, qd.data(), q8.data());
        }
        for (int64_t j = 0; j < p.n_kv; ++j) {
          s[j] = neg_inf;
          if (j < lo || j >= hi) continue;
          double dot = 0;
          if (int8) {
            const char* row = static_cast<const char*>(p.k.data) +
                              (b * p.k.stride[0] + j * p.k.stride[1] + hk * p.k.stride[2]) /
                                  core::kQ8Elems * core::kQ8Bytes;
            for (int64_t blk = 0; blk < p.head_dim / core::kQ8Elems; ++blk) {
              const char* block = row + blk * core::kQ8Bytes;
              uint16_t dk;
              std::memcpy(&dk, block, 2);
              int64_t isum = 0;
              for (int64_t c = 0; c < core::kQ8Elems; ++c) {
                isum += int64_t{reinterpret_cast<const int8_t*>(block + 2)[c]} *
                        q8[static_cast<size_t>(blk * core::kQ8Elems + c)];
              }
              dot += static_cast<double>(qd[static_cast<size_t>(blk)]) *
                     static_cast<double>(core::f16_to_f32(dk)) * static_cast<double>(isum);
            }
          } else {
            for (int64_t c = 0; c < p.head_dim; ++c) {
              dot += static_cast<double>(view_element(p.q, b, i, h, c)) *
                     static_cast<double>(view_element(p.k, b, j, hk, c));
            }
            dot *= static_cast<double>(p.scale);
          }
          s[j] = transform_score(p, b, h, i, j, dot);
          if (s[j] > m) m = s[j];
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        double l = 0;
        if (m != neg_inf) {
          for (int64_t j = lo; j < hi; ++j) {
            if (s[j] == neg_inf) continue;
            const double w = std::exp(s[j] - m);
            l += w;
            for (int64_t c = 0; c < p.head_dim_v; ++c) {
              acc[c] += w * static_cast<double>(view_element(p.v, b, j, hk, c));
            }
          }
        }
        float* o = p.out.data + b * p.out.stride[0] + i * p.out.stride[1] + h * p.out.stride[2];
        for (int64_t c = 0; c < p.head_dim_v; ++c) {
          o[c * p.out.stride[3]] = l > 0 ? static_cast<float>(acc[c] / l) : 0.f;
        }
        if (p.lse) {
          p.lse[(b * p.n_head + h) * p.n_q + i] =
              l > 0 ? static_cast<float>(m + std::log(l)) : -std::numeric_limits<float>::infinity();
        }
      }
    }
  }
}

}  // namespace qkv::kernels
