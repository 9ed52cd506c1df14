// Front end of the attention API: validation, backend choice, probabilities on demand.
#include "qkv/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "kernels/attention_problem.h"
#include "kernels/cpu/attention_cpu.h"
#include "kernels/quant/quantize.h"

namespace qkv {

void attention(const View4& q, const View4& k, const View4& v, const MutView4& out,
               std::span<float> lse, const AttentionOptions& options) {
  const kernels::AttentionProblem p = kernels::make_problem(q, k, v, out, lse, options);
  if (p.batch == 0 || p.n_q == 0 || p.n_head == 0) return;
  switch (options.backend) {
    case Backend::reference:
      kernels::attention_reference(p);
      return;
    case Backend::automatic:
    case Backend::cpu:
      kernels::attention_cpu(p);
      return;
  }
  core::throw_invalid("attention: unknown backend ", static_cast<int>(options.backend));
}

void attention_probs(const View4& q, const View4& k, std::span<const float> lse, int64_t batch,
                     int64_t head, std::span<const int64_t> rows, float* probs,
                     const AttentionOptions& options) {
  // v only has to be a valid view for validation; k stands in for it.
  const kernels::AttentionProblem p =
      kernels::make_problem(q, k, k, MutView4{}, {}, options, /*need_out=*/false);
  if (lse.empty()) core::throw_invalid("attention_probs: lse is empty (save it from attention())");
  kernels::check_lse_size("attention_probs", p, lse.size());
  if (!probs && !rows.empty()) core::throw_invalid("attention_probs: probs is null");
  if (batch < 0 || batch >= p.batch) {
    core::throw_invalid("attention_probs: batch = ", batch, " is outside [0, ", p.batch, ")");
  }
  if (head < 0 || head >= p.n_head) {
    core::throw_invalid("attention_probs: head = ", head, " is outside [0, ", p.n_head, ")");
  }
  for (int64_t i : rows) {
    if (i < 0 || i >= p.n_q)
      core::throw_invalid("attention_probs: row ", i, " is outside [0, ", p.n_q, ")");
  }
  kernels::attention_probs_cpu(p, lse.data(), batch, head, rows, probs);
}

void convert_from_f32(const float* src, int64_t n, DType dt, void* dst) {
  if (n < 0 || n % dtype_block_elems(dt) != 0) {
    core::throw_invalid("convert_from_f32: n = ", n, " is not a whole number of ", dtype_name(dt),
                        " blocks of ", dtype_block_elems(dt), " values");
  }
  switch (dt) {
    case DType::f32:
      std::copy(src, src + n, static_cast<float*>(dst));
      return;
    case DType::f16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_f16(src[i]);
      return;
    case DType::bf16:
      for (int64_t i = 0; i < n; ++i) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(src[i]);
      return;
    case DType::q8_0:
      kernels::quant::quantize_q8_0(src, n, static_cast<kernels::quant::BlockQ8_0*>(dst));
      return;
  }
  core::throw_invalid("convert_from_f32: unknown dtype ", static_cast<int>(dt));
}

std::string_view attention_cpu_target() {
  return kernels::cpu_target_name();
}

std::string_view attention_bf16_path(int64_t head_dim) {
  return kernels::cpu_bf16_path(head_dim);
}

double attention_flops(int64_t batch, int64_t n_head, int64_t n_q, int64_t n_kv, int64_t head_dim,
                       bool causal) {
  double f = 4.0 * static_cast<double>(batch) * static_cast<double>(n_head) *
             static_cast<double>(n_q) * static_cast<double>(n_kv) * static_cast<double>(head_dim);
  if (causal && n_q == n_kv) f *= 0.5;
  return f;
}

}  // namespace qkv
