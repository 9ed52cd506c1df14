#include "qkv_bench/attention_materialised.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "kernels/attention_problem.h"
#include "kernels/cpu/linear_gemm.h"
#include "qkv/error.h"
#include "qkv_bench/probe_targets.h"

namespace qkv::kernels::cpu {
namespace {

constexpr int64_t kMaxScoreFloats = int64_t{16} << 20;
constexpr int64_t kSoftmaxRowsPerTask = 16;

// Rows [0, n) of one kv head's K or V as a contiguous fp32 [n, dim] matrix: in place when it
// already is fp32 with unit stride (row stride ld), else converted into buf.
const float* as_f32_rows(const View4& t, int64_t b, int64_t hk, std::vector<float>& buf,
                         int64_t* ld, int threads) {
  const int64_t n = t.shape[1], dim = t.shape[3];
  const int64_t es = dtype_size(t.dtype);
  const char* base = static_cast<const char*>(t.data) + (b * t.stride[0] + hk * t.stride[2]) * es;
  if (t.dtype == DType::f32 && t.stride[3] == 1) {
    *ld = t.stride[1];
    return reinterpret_cast<const float*>(base);
  }
  buf.resize(static_cast<size_t>(n * dim));
  *ld = dim;
  const bench::ProbeOps& ops = bench::probe_ops_selected();
  const int64_t chunk = 256;
  core::parallel_for_dynamic((n + chunk - 1) / chunk, threads, [&](int64_t c, int) {
    for (int64_t j = c * chunk; j < std::min(n, (c + 1) * chunk); ++j) {
      const char* row = base + j * t.stride[1] * es;
      float* dst = buf.data() + j * dim;
      if (t.stride[3] == 1) {
        ops.to_f32(row, t.dtype, dst, dim);
      } else {
        for (int64_t x = 0; x < dim; ++x)
          ops.to_f32(row + x * t.stride[3] * es, t.dtype, dst + x, 1);
      }
    }
  });
  return buf.data();
}

}  // namespace

bool attention_materialised_available() {
  return gemm_available();
}

std::string_view attention_materialised_library() {
  return gemm_library_name();
}

void attention_materialised(const View4& q, const View4& k, const View4& v, const MutView4& out,
                            bool causal, int threads) {
  if (!gemm_available())
    throw Error("materialised attention needs the GEMM library (OpenBLAS), absent from this build");
  const int64_t B = q.shape[0], nq = q.shape[1], H = q.shape[2], d = q.shape[3];
  const int64_t nkv = k.shape[1], HK = k.shape[2], dv = v.shape[3];
  if (k.shape[0] != B || v.shape[0] != B || v.shape[1] != nkv || v.shape[2] != HK ||
      k.shape[3] != d || out.shape[0] != B || out.shape[1] != nq || out.shape[2] != H ||
      out.shape[3] != dv || B <= 0 || nq <= 0 || nkv <= 0 || H <= 0 || d <= 0 || dv <= 0 ||
      HK <= 0 || H % HK != 0) {
    throw InvalidArgument("materialised attention: shapes disagree: q " + shape_str(q.shape) +
                          ", k " + shape_str(k.shape) + ", v " + shape_str(v.shape) + ", out " +
                          shape_str(out.shape));
  }
  if (q.dtype != DType::f32 || q.stride[3] != 1 || out.stride[3] != 1) {
    throw InvalidArgument(
        "materialised attention: q must be fp32, and q and out need unit stride "
        "along head_dim");
  }
  if (dtype_is_blocked(k.dtype) || dtype_is_blocked(v.dtype)) {
    throw InvalidArgument("materialised attention: k and v must be f32, f16 or bf16, got " +
                          std::string(dtype_name(k.dtype)));
  }
  threads = core::resolve_threads(threads);
  const bench::ProbeOps& ops = bench::probe_ops_selected();
  const int64_t group = H / HK;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int64_t block = std::clamp<int64_t>(kMaxScoreFloats / std::max<int64_t>(nkv, 1), 1, nq);
  // Reused between calls, as a framework's caching allocator would: a fresh S of 16 MiB would
  // otherwise pay for its first-touch page faults on every call.
  static thread_local std::vector<float> s, kbuf, vbuf;
  s.resize(static_cast<size_t>(block * nkv));
  float* const sp = s.data();  // the worker threads below must not name the thread_local
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t hk = 0; hk < HK; ++hk) {
      int64_t ldk = 0, ldv = 0;
      const float* kp = as_f32_rows(k, b, hk, kbuf, &ldk, threads);
      const float* vp = as_f32_rows(v, b, hk, vbuf, &ldv, threads);
      for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
        for (int64_t r0 = 0; r0 < nq; r0 += block) {
          const int64_t rows = std::min(block, nq - r0);
          const float* qp = static_cast<const float*>(q.data) + b * q.stride[0] + r0 * q.stride[1] +
                            h * q.stride[2];
          float* op = out.data + b * out.stride[0] + r0 * out.stride[1] + h * out.stride[2];
          sgemm(false, true, rows, nkv, d, scale, qp, q.stride[1], kp, ldk, 0.f, sp, nkv, threads);
          const int64_t tasks = (rows + kSoftmaxRowsPerTask - 1) / kSoftmaxRowsPerTask;
          core::parallel_for_dynamic(tasks, threads, [&](int64_t t, int) {
            const int64_t end = std::min(rows, (t + 1) * kSoftmaxRowsPerTask);
            for (int64_t r = t * kSoftmaxRowsPerTask; r < end; ++r) {
              // Query r0 + r sits at position n_kv - n_q + r0 + r (attention.h).
              const int64_t valid = causal ? nkv - nq + r0 + r + 1 : nkv;
              ops.softmax_row(sp + r * nkv, valid, nkv);
            }
          });
          sgemm(false, false, rows, dv, nkv, 1.f, sp, nkv, vp, ldv, 0.f, op, out.stride[1],
                threads);
        }
      }
    }
  }
}

}  // namespace qkv::kernels::cpu
