#include "core/parallel.h"
#include "qkv/threads.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>

namespace qkv::core {

int resolve_threads(int requested) {
  if (requested > 0) return requested;
  return omp_get_max_threads();
}

void parallel_for_dynamic(int64_t n, int n_threads, const std::function<void(int64_t, int)>& fn) {
  if (n <= 0) return;
  const int threads = static_cast<int>(std::min<int64_t>(resolve_threads(n_threads), n));
  if (threads <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i, 0);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mu;
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    for (;;) {
      const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) break;
      try {
        fn(i, tid);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!error) error = std::current_exception();
        next.store(n, std::memory_order_relaxed);
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace qkv::core

namespace qkv {

int resolve_threads(int n_threads) {
  return core::resolve_threads(n_threads);
}

}  // namespace qkv
