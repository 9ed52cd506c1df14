#include "qkv_bench/probe.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "core/arena.h"
#include "core/parallel.h"
#include "qkv_bench/probe_targets.h"

namespace qkv::kernels {

MachinePeak measure_machine_peak(int threads, double seconds) {
  const bench::ProbeOps& ops = bench::probe_ops_selected();
  MachinePeak peak;
  peak.threads = core::resolve_threads(threads);
  peak.target = ops.name;
  // FMA: every thread runs the probe at once; the sum is what the cores sustain together.
  std::vector<double> per(peak.threads, 0.0);
#pragma omp parallel num_threads(peak.threads)
  { per[omp_get_thread_num()] = ops.fma_peak(seconds); }
  for (double g : per) peak.fma_gflops += g;

  // Bandwidth: 512 MiB (far beyond any cache) on huge pages (4 KiB first touches would cost
  // seconds here), touched first so page faults are not counted; the best of a few passes.
  const int64_t n = int64_t{1} << 27;
  size_t rounded = 0;
  float* buf = nullptr;
  try {
    buf = static_cast<float*>(core::alloc_large_block(static_cast<size_t>(n) * 4, &rounded));
  } catch (const std::bad_alloc&) {
    return peak;  // no bandwidth figure rather than no figures at all
  }
  core::parallel_for_dynamic(peak.threads, peak.threads, [&](int64_t t, int) {
    const int64_t lo = n / peak.threads * t,
                  hi = t + 1 == peak.threads ? n : n / peak.threads * (t + 1);
    std::memset(buf + lo, 0, static_cast<size_t>(hi - lo) * 4);
  });
  double best = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int pass = 0; pass < 8; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    volatile float sink = 0;
    const int64_t per_thread = n / peak.threads / 64 * 64;
#pragma omp parallel num_threads(peak.threads)
    {
      const int t = omp_get_thread_num();
      const float s = ops.read_sum(buf + per_thread * t, per_thread);
      if (s != 0) sink = s;
    }
    static_cast<void>(sink);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(per_thread) * peak.threads * 4 / dt * 1e-9);
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >
            2 * seconds &&
        pass >= 2)
      break;
  }
  std::free(buf);
  peak.read_gbps = best;
  return peak;
}

double measure_stream_read(const void* a, const void* b, std::size_t bytes, int threads,
                           double seconds) {
  const bench::ProbeOps& ops = bench::probe_ops_selected();
  threads = core::resolve_threads(threads);
  constexpr size_t kChunk = 4096;
  const size_t chunks = bytes / kChunk / static_cast<size_t>(threads);  // per thread and buffer
  if (chunks == 0) return 0;
  const auto* fa = static_cast<const float*>(a);
  const auto* fb = static_cast<const float*>(b);
  constexpr int64_t kFloats = kChunk / 4;
  const double read = 2.0 * static_cast<double>(chunks * kChunk) * threads;
  std::vector<double> gbps;
  volatile float sink = 0;
  const auto start = std::chrono::steady_clock::now();
  while (gbps.size() < 5 ||
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() <
             seconds) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
    {
      const size_t first = chunks * static_cast<size_t>(omp_get_thread_num());
      float s = 0;
      for (size_t c = first; c < first + chunks; ++c) {
        s += ops.read_sum(fa + c * kFloats, kFloats);
        s += ops.read_sum(fb + c * kFloats, kFloats);
      }
      if (s != 0) sink = s;
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    gbps.push_back(read / dt * 1e-9);
    if (gbps.size() >= 1000) break;
  }
  static_cast<void>(sink);
  std::nth_element(gbps.begin(), gbps.begin() + gbps.size() / 2, gbps.end());
  return gbps[gbps.size() / 2];
}

}  // namespace qkv::kernels
