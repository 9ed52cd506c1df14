// Front end of attention_backward(): validation, backend choice, and the reference backward pass.
//
// With S = transform(scale · Q Kᵀ) (soft-cap, ALiBi, masks: attention_problem.h), P = exp(S - lse),
// out = P V and a loss L with dout = dL/dout, per query row i:
//   D_i  = Σ_c dout[i, c] · out[i, c]         (= Σ_j P_ij dP_ij, since P rows sum to 1)
//   dV   = Pᵀ dout,   dP = dout Vᵀ,   dS = P ∘ (dP - D)
//   dS  *= 1 - tanh²(raw / cap)                (soft-cap only; ALiBi and masks are constants)
//   dQ   = scale · dS K,   dK = scale · dSᵀ Q
// and with GQA/MQA dK and dV of a kv head sum over the query heads of its group.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/attention_problem.h"
#include "kernels/cpu/attention_backward_cpu.h"
#include "qkv/attention.h"

namespace qkv {
namespace {

using core::throw_invalid;

using kernels::shape_str;

void check_grad_view(const char* name, const MutView4& t, const std::array<int64_t, 4>& want,
                     const char* what) {
  if (!t.data) throw_invalid("attention_backward: ", name, ".data is null");
  if (t.shape != want) {
    throw_invalid("attention_backward: ", name, " shape ", shape_str(t.shape), " should be ",
                  shape_str(want), " = ", what);
  }
  for (int d = 0; d < 4; ++d) {
    if (t.stride[d] < 0) {
      throw_invalid("attention_backward: ", name, ".stride[", d, "] = ", t.stride[d],
                    " is negative");
    }
  }
}

void check_input_view(const char* name, const View4& t, const std::array<int64_t, 4>& want) {
  if (!t.data) throw_invalid("attention_backward: ", name, ".data is null");
  if (t.dtype != DType::f32) {
    throw_invalid("attention_backward: ", name, " must be f32, got ", dtype_name(t.dtype));
  }
  if (t.shape != want) {
    throw_invalid("attention_backward: ", name, " shape ", shape_str(t.shape), " should be ",
                  shape_str(want), " = [batch, n_q, n_head, head_dim_v]");
  }
  for (int d = 0; d < 4; ++d) {
    if (t.stride[d] < 0) {
      throw_invalid("attention_backward: ", name, ".stride[", d, "] = ", t.stride[d],
                    " is negative");
    }
  }
}

}  // namespace

namespace kernels {

void attention_backward_reference(const BackwardProblem& bp) {
  const AttentionProblem& p = bp.p;
  const double scale = p.scale, cap = p.opt.softcap;
  const int64_t d = p.head_dim, dv = p.head_dim_v;
  auto at = [](const View4& t, int64_t b, int64_t i, int64_t h, int64_t c) {
    return static_cast<double>(view_element(t, b, i, h, c));
  };
  auto ref = [](const MutView4& t, int64_t b, int64_t i, int64_t h, int64_t c) -> float& {
    return t.data[b * t.stride[0] + i * t.stride[1] + h * t.stride[2] + c * t.stride[3]];
  };
  std::vector<double> dk_acc(static_cast<size_t>(p.n_kv * d));   // [n_kv, head_dim]
  std::vector<double> dv_acc(static_cast<size_t>(p.n_kv * dv));  // [n_kv, head_dim_v]
  std::vector<double> dq_acc(static_cast<size_t>(d));            // [head_dim]
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t hk = 0; hk < p.n_head_kv; ++hk) {
      std::fill(dk_acc.begin(), dk_acc.end(), 0.0);
      std::fill(dv_acc.begin(), dv_acc.end(), 0.0);
      for (int64_t h = hk * p.group; h < (hk + 1) * p.group; ++h) {
        for (int64_t i = 0; i < p.n_q; ++i) {
          std::fill(dq_acc.begin(), dq_acc.end(), 0.0);
          const double lse = bp.lse[(b * p.n_head + h) * p.n_q + i];
          int64_t lo, hi;
          p.key_range(b, i, &lo, &hi);
          // A fully masked row (lse = -inf) has P = 0 everywhere: no contribution, dq = 0.
          if (lse == -std::numeric_limits<double>::infinity()) lo = hi;
          double D = 0;
          for (int64_t c = 0; c < dv; ++c) D += at(bp.dout, b, i, h, c) * at(bp.out, b, i, h, c);
          for (int64_t j = lo; j < hi; ++j) {
            double raw = 0;
            for (int64_t c = 0; c < d; ++c) raw += at(p.q, b, i, h, c) * at(p.k, b, j, hk, c);
            raw *= scale;
            const double s = transform_score(p, b, h, i, j, raw);
            if (s == -std::numeric_limits<double>::infinity()) continue;
            const double prob = std::exp(s - lse);
            double dp = 0;
            for (int64_t c = 0; c < dv; ++c) {
              const double g = at(bp.dout, b, i, h, c);
              dv_acc[j * dv + c] += prob * g;
              dp += g * at(p.v, b, j, hk, c);
            }
            double ds = prob * (dp - D);
            if (cap > 0) {
              const double t = std::tanh(raw / cap);
              ds *= 1 - t * t;
            }
            for (int64_t c = 0; c < d; ++c) {
              dq_acc[c] += scale * ds * at(p.k, b, j, hk, c);
              dk_acc[j * d + c] += scale * ds * at(p.q, b, i, h, c);
            }
          }
          for (int64_t c = 0; c < d; ++c) ref(bp.dq, b, i, h, c) = static_cast<float>(dq_acc[c]);
        }
      }
      for (int64_t j = 0; j < p.n_kv; ++j) {
        for (int64_t c = 0; c < d; ++c)
          ref(bp.dk, b, j, hk, c) = static_cast<float>(dk_acc[j * d + c]);
        for (int64_t c = 0; c < dv; ++c)
          ref(bp.dv, b, j, hk, c) = static_cast<float>(dv_acc[j * dv + c]);
      }
    }
  }
}

}  // namespace kernels

void attention_backward(const View4& q, const View4& k, const View4& v, const View4& out,
                        std::span<const float> lse, const View4& dout, const MutView4& dq,
                        const MutView4& dk, const MutView4& dv, const AttentionOptions& options) {
  // make_problem checks q, k, v and the options; `out` is checked here as an input.
  const kernels::AttentionProblem p =
      kernels::make_problem(q, k, v, MutView4{}, {}, options, /*need_out=*/false);
  if (k.dtype != DType::f32) {
    throw_invalid("attention_backward: k and v must be f32 (training keeps fp32 activations), got ",
                  dtype_name(k.dtype));
  }
  if (options.precision == Precision::bf16) {
    throw_invalid("attention_backward: Precision::bf16 is not supported; use Precision::f32");
  }
  if (lse.empty()) {
    throw_invalid("attention_backward: lse is empty (save it from the forward attention())");
  }
  kernels::check_lse_size("attention_backward", p, lse.size());
  const std::array<int64_t, 4> out_shape{p.batch, p.n_q, p.n_head, p.head_dim_v};
  check_input_view("out", out, out_shape);
  check_input_view("dout", dout, out_shape);
  check_grad_view("dq", dq, q.shape, "q's shape [batch, n_q, n_head, head_dim]");
  check_grad_view("dk", dk, k.shape, "k's shape [batch, n_kv, n_head_kv, head_dim]");
  check_grad_view("dv", dv, v.shape, "v's shape [batch, n_kv, n_head_kv, head_dim_v]");

  const kernels::BackwardProblem bp{p, out, lse.data(), dout, dq, dk, dv};
  switch (options.backend) {
    case Backend::reference:
      kernels::attention_backward_reference(bp);
      return;
    case Backend::automatic:
    case Backend::cpu:
      kernels::attention_backward_cpu(bp);
      return;
  }
  throw_invalid("attention_backward: unknown backend ", static_cast<int>(options.backend));
}

}  // namespace qkv
