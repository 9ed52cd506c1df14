// OpenBLAS (the OpenMP build) behind cpu/linear_gemm.h. The OpenMP variant takes its thread
// count from the calling thread's omp_get_max_threads() and runs on libgomp's team, the pool our
// kernels already use; the pthread variant would start a second pool that spins against it.
#include "kernels/cpu/linear_gemm.h"

#include <omp.h>

#include <string>

#if QKV_HAVE_OPENBLAS
#include <cblas.h>
extern "C" char* openblas_get_corename(void);
extern "C" char* openblas_get_config(void);
#endif

namespace qkv::kernels::cpu {
namespace {

// Sets the calling thread's OpenMP thread count for the duration of one library call.
class OmpThreads {
 public:
  explicit OmpThreads(int threads) : saved_(omp_get_max_threads()) {
    if (threads != saved_) omp_set_num_threads(threads);
  }
  ~OmpThreads() {
    if (omp_get_max_threads() != saved_) omp_set_num_threads(saved_);
  }
  OmpThreads(const OmpThreads&) = delete;
  OmpThreads& operator=(const OmpThreads&) = delete;

 private:
  int saved_;
};

}  // namespace

#if QKV_HAVE_OPENBLAS

bool gemm_available() {
  return true;
}

void sgemm_nt(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w,
              int64_t ldw, float* y, int64_t ldy, int threads) {
  OmpThreads scope(threads);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, x, static_cast<blasint>(ldx),
              w, static_cast<blasint>(ldw), 0.0f, y, static_cast<blasint>(ldy));
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
           int threads) {
  OmpThreads scope(threads);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

void sgemv_n(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float* y,
             int threads) {
  OmpThreads scope(threads);
  cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<blasint>(n), static_cast<blasint>(k), 1.0f,
              w, static_cast<blasint>(ldw), x, 1, 0.0f, y, 1);
}

std::string_view gemm_library_name() {
  // openblas_get_config() names the threading ("USE_OPENMP") and the kernel set chosen at run time
  // (DYNAMIC_ARCH; OPENBLAS_CORETYPE overrides it).
  static const std::string name = [] {
    const std::string config = openblas_get_config();  // "OpenBLAS 0.3.21 ... USE_OPENMP ..."
    const bool omp = config.find("USE_OPENMP") != std::string::npos;
    return config.substr(0, config.find(' ', 9)) + (omp ? " openmp (" : " pthread (") +
           openblas_get_corename() + ")";
  }();
  return name;
}

#else

bool gemm_available() {
  return false;
}

void sgemm_nt(int64_t m, int64_t n, int64_t k, const float* x, int64_t ldx, const float* w,
              int64_t ldw, float* y, int64_t ldy, int threads) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = 0; o < n; ++o) {
      float acc = 0;
      for (int64_t j = 0; j < k; ++j) acc += x[i * ldx + j] * w[o * ldw + j];
      y[i * ldy + o] = acc;
    }
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0;
      for (int64_t p = 0; p < k; ++p) {
        acc += (trans_a ? a[p * lda + i] : a[i * lda + p]) *
               (trans_b ? b[j * ldb + p] : b[p * ldb + j]);
      }
      c[i * ldc + j] = alpha * acc + (beta == 0.f ? 0.f : beta * c[i * ldc + j]);
    }
}

void sgemv_n(int64_t n, int64_t k, const float* w, int64_t ldw, const float* x, float* y,
             int threads) {
  sgemm_nt(1, n, k, x, k, w, ldw, y, n, threads);
}

std::string_view gemm_library_name() {
  return "none";
}

#endif

}  // namespace qkv::kernels::cpu
