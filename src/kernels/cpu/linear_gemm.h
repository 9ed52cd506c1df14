// The GEMM library behind the prefill path of the linear layers (chosen by measurement:
// docs/DEPENDENCIES.md, "Linear layers"). Only linear_gemm.cpp includes the library's header.
#pragma once

#include <cstdint>
#include <string_view>

namespace qkv::kernels::cpu {

// True when the build found the library; without it forward() uses the matrix-vector kernels
// for every m.
bool gemm_available();

// y[m, n] = x[m, k] · w[n, k]ᵀ (y overwritten), all row-major fp32, on `threads` threads of the
// library (1 inside a parallel region of ours).
void sgemm_nt(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w,
              int64_t ldw, float* y, int64_t ldy, int threads);

// C[m, n] = alpha · op(A) · op(B) + beta · C, row-major fp32; op transposes when asked
// (A is [m, k], or [k, m] when trans_a; B is [k, n], or [n, k] when trans_b). The products of the
// backward pass (dX = dY · W, dW += dYᵀ · X) use it.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
           int threads);

// The library's own matrix-vector product y[n] = w[n, k] · x[k], for benchmarks.
void sgemv_n(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float* y,
             int threads);

// "OpenBLAS 0.3.21 openmp (Zen)", or "none".
std::string_view gemm_library_name();

}  // namespace qkv::kernels::cpu
