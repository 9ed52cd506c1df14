// qkv bench attention: times the fast CPU attention (or, with --backward, attention_backward) on
// one shape and reports it against this machine's measured FMA peak and memory bandwidth, and
// against the reference in the same run.
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <random>
#include <span>
#include <vector>

#include "bench_mpi.h"
#include "command.h"
#include "qkv/attention.h"
#include "qkv/error.h"
#include "qkv/threads.h"
#include "qkv_bench/attention_materialised.h"
#include "qkv_bench/buffer.h"
#include "qkv_bench/probe.h"

namespace qkv::app {

void add_bench_model(CLI::App& bench);  // cmd_bench_model.cpp

namespace cmd_bench {  // one per subcommand: the qkv target is a unity build
namespace {

// Query rows per sequence up to which a shape counts as a decode (one token, or a few drafted ones,
// against the cache) and the report adds the stream-read ceiling.
constexpr int64_t kDecodeQueries = 16;

struct BenchArgs {
  int64_t batch = 1, n_q = 2048, n_kv = 0, heads = 12, kv_heads = 0, head_dim = 64;
  bool causal = false;
  std::string dtype = "f32";  // parse_dtype's names
  Precision precision = Precision::f32;
  bool int8_scores = false;  // AttentionOptions::int8_scores
  int threads = 0;
  int reps = 0;
  bool json = false;
  bool no_reference = false;
  bool backward = false;
  bool mpi = false;  // ring attention over the ranks of an MPI job (cmd_bench_mpi.cpp)
  int64_t mpi_delay_us = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Median seconds of `fn` after a warm-up run (first touches, arenas): `reps_asked` repetitions, or
// with 0 enough for about one second, at least 3 and at most 200. *reps gets the count.
double time_median(const std::function<void()>& fn, int reps_asked, int* reps) {
  const auto tw = std::chrono::steady_clock::now();
  fn();
  const double first = seconds_since(tw);
  *reps = reps_asked > 0 ? reps_asked
                         : static_cast<int>(std::clamp(1.0 / std::max(first, 1e-6), 3.0, 200.0));
  std::vector<double> times;
  for (int r = 0; r < *reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    times.push_back(seconds_since(t0));
  }
  return median(times);
}

const EnumNames<Precision> kPrecisionNames{{"f32", Precision::f32}, {"bf16", Precision::bf16}};

// Fills the defaults (n_kv = n_q, kv_heads = heads) and refuses what cannot run.
BenchArgs checked(BenchArgs a) {
  if (a.n_kv == 0) a.n_kv = a.n_q;
  if (a.kv_heads == 0) a.kv_heads = a.heads;
  if (a.batch <= 0 || a.n_q <= 0 || a.n_kv <= 0 || a.heads <= 0 || a.kv_heads <= 0 ||
      a.head_dim <= 0) {
    throw InvalidArgument("every size must be positive");
  }
  if (a.backward && (parse_dtype(a.dtype) != DType::f32 || a.precision != Precision::f32)) {
    throw InvalidArgument("--backward needs --dtype f32 and --precision f32 (got --dtype " +
                          a.dtype + ", --precision " + enum_name(kPrecisionNames, a.precision) +
                          "): attention_backward takes fp32 k and v");
  }
  if (a.int8_scores && parse_dtype(a.dtype) != DType::q8_0) {
    throw InvalidArgument("--int8-scores needs --dtype q8_0 (got --dtype " + a.dtype +
                          "): it computes the scores of a q8_0 K in integers");
  }
  if (a.int8_scores && a.precision != Precision::f32) {
    throw InvalidArgument("--int8-scores needs --precision f32");
  }
  return a;
}

// Bytes per K/V value (34 / 32 for q8_0).
double kv_bytes_per_value(DType dt) {
  return static_cast<double>(dtype_block_bytes(dt)) / dtype_block_elems(dt);
}

// Element counts of q/out and of k/v. A shape whose tensors overflow 64-bit sizes or need more
// memory than the machine has is refused by name here, not by a failed allocation later.
void count_elements(const BenchArgs& a, DType dt, int64_t* nq, int64_t* nk) {
  auto elements = [](std::initializer_list<int64_t> dims, const char* what) {
    int64_t n = 1;
    for (int64_t x : dims) {
      if (__builtin_mul_overflow(n, x, &n))
        throw InvalidArgument(std::string(what) + " overflows a 64-bit size");
    }
    return n;
  };
  *nq = elements({a.batch, a.n_q, a.heads, a.head_dim}, "batch * n_q * heads * head_dim");
  *nk = elements({a.batch, a.n_kv, a.kv_heads, a.head_dim}, "batch * n_kv * kv_heads * head_dim");
  if (a.head_dim % dtype_block_elems(dt) != 0) {
    throw InvalidArgument("--dtype " + std::string(dtype_name(dt)) + " stores blocks of " +
                          std::to_string(dtype_block_elems(dt)) + " values along head_dim; " +
                          "--head-dim " + std::to_string(a.head_dim) + " is not a multiple");
  }
  // q and out (fp32), k and v; the backward adds dout, dq (fp32) and dk, dv (fp32, as k and v).
  const double need_gib =
      ((a.backward ? 4.0 : 2.0) * 4.0 * static_cast<double>(*nq) +
       (a.backward ? 4.0 : 2.0) * kv_bytes_per_value(dt) * static_cast<double>(*nk)) /
      (1024.0 * 1024.0 * 1024.0);
  const double have_gib = static_cast<double>(sysconf(_SC_PHYS_PAGES)) *
                          static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0 * 1024.0);
  if (have_gib > 0 && need_gib > have_gib) {
    char msg[256];
    std::snprintf(
        msg, sizeof msg,
        "this shape's tensors need %.1f GiB (q, k, v and out%s); the machine has %.1f GiB",
        need_gib, a.backward ? " and their gradients" : "", have_gib);
    throw InvalidArgument(msg);
  }
}

// The benchmarked problem: random q, k, v (and dout for the backward) and the output buffers.
// Tensors in bench::Buffer (huge pages), as the runtime's KV cache is: a decode streams K and
// V once, and the bandwidth it is compared with is measured on huge pages too. Built in place.
struct Problem {
  DType dt;
  int64_t nq = 0, nk = 0;  // elements of q/out and of k/v
  bench::Buffer qb, outb, kb, vb;
  std::vector<float> lse;               // [batch, heads, n_q]
  std::vector<float> dout, dq, dk, dv;  // backward: [batch, n_q, heads, head_dim] / [.., n_kv, ..]
  View4 qv, kv, vv;
  MutView4 ov;
  AttentionOptions opt;

  Problem(const BenchArgs& a, int threads) : dt(parse_dtype(a.dtype)), nq(0), nk(0) {
    count_elements(a, dt, &nq, &nk);
    qb = bench::Buffer(static_cast<size_t>(nq) * 4);
    outb = bench::Buffer(static_cast<size_t>(nq) * 4);
    kb = bench::Buffer(static_cast<size_t>(dtype_bytes(dt, nk)));
    vb = bench::Buffer(static_cast<size_t>(dtype_bytes(dt, nk)));
    lse.resize(static_cast<size_t>(a.batch * a.heads * a.n_q));
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    float* q = qb.as<float>();
    for (int64_t i = 0; i < nq; ++i) q[i] = u(rng);
    if (dt == DType::f32) {
      for (float* t : {kb.as<float>(), vb.as<float>()})
        for (int64_t i = 0; i < nk; ++i) t[i] = u(rng);
    } else if (dt == DType::q8_0) {  // random values in chunks of whole blocks, quantized
      std::vector<float> x(size_t{1} << 16);
      for (char* t : {kb.as<char>(), vb.as<char>()}) {
        for (int64_t i = 0; i < nk; i += static_cast<int64_t>(x.size())) {
          const int64_t n = std::min<int64_t>(static_cast<int64_t>(x.size()), nk - i);
          for (int64_t c = 0; c < n; ++c) x[static_cast<size_t>(c)] = u(rng);
          convert_from_f32(x.data(), n, dt, t + dtype_bytes(dt, i));
        }
      }
    } else {
      for (uint16_t* t : {kb.as<uint16_t>(), vb.as<uint16_t>()})
        for (int64_t i = 0; i < nk; ++i)
          t[i] = dt == DType::f16 ? f32_to_f16(u(rng)) : f32_to_bf16(u(rng));
    }
    qv = View4::dense(q, DType::f32, {a.batch, a.n_q, a.heads, a.head_dim});
    kv = View4::dense(kb.data(), dt, {a.batch, a.n_kv, a.kv_heads, a.head_dim});
    vv = View4::dense(vb.data(), dt, {a.batch, a.n_kv, a.kv_heads, a.head_dim});
    ov = MutView4::dense(outb.as<float>(), {a.batch, a.n_q, a.heads, a.head_dim});
    opt.causal = a.causal;
    opt.n_threads = threads;
    opt.precision = a.precision;
    opt.int8_scores = a.int8_scores;
    // Backward: gradients of L = sum dout * out, from the forward's out and lse.
    if (a.backward) {
      dout.resize(nq), dq.resize(nq), dk.resize(nk), dv.resize(nk);
      for (auto& x : dout) x = u(rng);
      attention(qv, kv, vv, ov, lse, opt);
    }
  }
  Problem(const Problem&) = delete;
  Problem& operator=(const Problem&) = delete;

  // One timed call: the forward, or the backward from the forward's out and lse.
  void run_once(bool backward) {
    if (backward) {
      attention_backward(qv, kv, vv, View4::dense(ov.data, DType::f32, ov.shape), lse,
                         View4::dense(dout.data(), DType::f32, ov.shape),
                         MutView4::dense(dq.data(), qv.shape), MutView4::dense(dk.data(), kv.shape),
                         MutView4::dense(dv.data(), vv.shape), opt);
    } else {
      attention(qv, kv, vv, ov, lse, opt);
    }
  }
};

// What one run measured.
struct Results {
  double t = 0;  // seconds, median
  int reps = 0;
  double flops = 0, bytes = 0;
  double ref_ms = 0;
  double rss_mib = 0, io_mib = 0;
  kernels::MachinePeak peak;
  double stream_gbps = 0;
  bool mat = false;  // the materialised peer ran
  double mat_ms = 0;
  int mat_reps = 0;
  int64_t mat_batch = 0, mat_kv_heads = 0;
  int threads = 0;
};

// The reference (naive, double) is timed on the last rows of the first (batch, head) slice,
// without the causal mask, and scaled by FLOPs to the whole problem: run whole it would take
// minutes and O(n_kv) memory per row is all it needs. Returns milliseconds.
double time_reference(const BenchArgs& a, const Problem& p, double flops, double flop_factor) {
  const int64_t rows = std::min<int64_t>(a.n_q, 64);
  const float* qrows = static_cast<const float*>(p.qv.data) + (a.n_q - rows) * p.qv.stride[1];
  const View4 q1{qrows, DType::f32, {1, rows, 1, a.head_dim}, p.qv.stride};
  const View4 k1{p.kv.data, p.dt, {1, a.n_kv, 1, a.head_dim}, p.kv.stride};
  const View4 v1{p.vv.data, p.dt, {1, a.n_kv, 1, a.head_dim}, p.vv.stride};
  const MutView4 o1{p.ov.data, {1, rows, 1, a.head_dim}, p.ov.stride};
  AttentionOptions ro;
  ro.backend = Backend::reference;
  double ref_s = 0;
  if (a.backward) {
    // The slice's own forward (not timed), then its backward.
    std::vector<float> o(rows * a.head_dim), l(rows), gq(rows * a.head_dim);
    std::vector<float> gk(a.n_kv * a.head_dim), gv(a.n_kv * a.head_dim);
    const std::array<int64_t, 4> qs{1, rows, 1, a.head_dim}, ks{1, a.n_kv, 1, a.head_dim};
    attention(q1, k1, v1, MutView4::dense(o.data(), qs), l, ro);
    const View4 g1{p.dout.data() + (a.n_q - rows) * p.qv.stride[1], DType::f32, qs, p.qv.stride};
    const auto t0 = std::chrono::steady_clock::now();
    attention_backward(q1, k1, v1, View4::dense(o.data(), DType::f32, qs), l, g1,
                       MutView4::dense(gq.data(), qs), MutView4::dense(gk.data(), ks),
                       MutView4::dense(gv.data(), ks), ro);
    ref_s = seconds_since(t0);
  } else {
    const auto t0 = std::chrono::steady_clock::now();
    attention(q1, k1, v1, o1, {}, ro);
    ref_s = seconds_since(t0);
  }
  return ref_s * 1e3 * flops /
         (flop_factor * attention_flops(1, 1, rows, a.n_kv, a.head_dim, false));
}

// The materialised peer (kernels/cpu/attention_materialised.h): the same attention as two GEMM
// library products around a row softmax, as a framework's non-fused path computes it, on the
// same threads, timed like the kernel (median after a warm-up run). After the probe: the GEMM
// library's threads may keep spinning for a while after its last product.
// On large problems it times a slice, the first sequence and the first kv heads with their whole
// query groups, whose counted FLOPs stay under a budget (25 GFLOP; QKV_PEER_GFLOP overrides it),
// and scales its time by FLOPs, as for the reference: it computes heads one after another, so a
// slice of heads takes that fraction of the time.
void time_materialised(const BenchArgs& a, const Problem& p, Results& r) {
  r.mat_batch = a.batch;
  r.mat_kv_heads = a.kv_heads;
  r.mat = !a.no_reference && !a.backward && a.precision == Precision::f32 &&
          !dtype_is_blocked(p.dt) && kernels::cpu::attention_materialised_available();
  if (!r.mat) return;
  double budget = 25e9;
  if (const char* env = std::getenv("QKV_PEER_GFLOP")) budget = std::atof(env) * 1e9;
  const int64_t group = a.heads / a.kv_heads;
  const double group_flops = attention_flops(1, group, a.n_q, a.n_kv, a.head_dim, a.causal);
  if (r.flops > budget) {
    r.mat_batch = 1;
    r.mat_kv_heads = std::clamp<int64_t>(static_cast<int64_t>(budget / group_flops), 1, a.kv_heads);
  }
  const int64_t mat_heads = r.mat_kv_heads * group;
  const View4 qs{p.qv.data, p.qv.dtype, {r.mat_batch, a.n_q, mat_heads, a.head_dim}, p.qv.stride};
  const View4 ks{
      p.kv.data, p.kv.dtype, {r.mat_batch, a.n_kv, r.mat_kv_heads, a.head_dim}, p.kv.stride};
  const View4 vs{
      p.vv.data, p.vv.dtype, {r.mat_batch, a.n_kv, r.mat_kv_heads, a.head_dim}, p.vv.stride};
  const MutView4 os{p.ov.data, {r.mat_batch, a.n_q, mat_heads, a.head_dim}, p.ov.stride};
  const double scale =
      r.flops / attention_flops(r.mat_batch, mat_heads, a.n_q, a.n_kv, a.head_dim, a.causal);
  auto run_mat = [&] { kernels::cpu::attention_materialised(qs, ks, vs, os, a.causal, r.threads); };
  r.mat_ms = time_median(run_mat, a.reps, &r.mat_reps) * 1e3 * scale;
}

Results measure(const BenchArgs& a, Problem& p, int threads) {
  Results r;
  r.threads = threads;
  // The backward has 5 products the size of the forward's 2 (S, dP, dV, dK, dQ), so its FLOPs
  // count 2.5 times the forward's.
  const double flop_factor = a.backward ? 2.5 : 1.0;
  r.flops = flop_factor * attention_flops(a.batch, a.heads, a.n_q, a.n_kv, a.head_dim, a.causal);
  // q + out, k + v; backward also reads dout and writes dq, dk, dv
  r.bytes = (a.backward ? 2.0 : 1.0) * (4.0 * (2 * p.nq) + 2.0 * kv_bytes_per_value(p.dt) * p.nk);
  r.t = time_median([&] { p.run_once(a.backward); }, a.reps, &r.reps);
  if (!a.no_reference) r.ref_ms = time_reference(a, p, r.flops, flop_factor);

  // Peak resident memory against the bytes of q, k, v and out: what the kernel itself needs (read
  // before the materialised peer, whose S is the memory the fused kernel avoids).
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  r.rss_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;
  r.io_mib = r.bytes / (1024.0 * 1024.0);
  // The machine's limits, measured by this binary in this run (after the RSS reading: the
  // bandwidth probe streams a 512 MiB buffer).
  if (!a.json) std::fprintf(stderr, "measuring this machine's FMA peak and memory bandwidth...\n");
  r.peak = kernels::measure_machine_peak(threads);
  // Decode shapes (a few queries against the cache) are memory-bound: their own K and V bytes read
  // by a plain loop on the same threads (each a contiguous share of both, as the decode splits its
  // key range) are the ceiling the kernel is held to, beside the probe's single-stream figure.
  const bool decode = a.n_q <= kDecodeQueries && !a.backward;
  r.stream_gbps =
      decode ? kernels::measure_stream_read(p.kv.data, p.vv.data,
                                            static_cast<size_t>(dtype_bytes(p.dt, p.nk)), threads)
             : 0.0;
  time_materialised(a, p, r);
  return r;
}

void print_json(const BenchArgs& a, const Results& r) {
  const double t = r.t;
  const double gflops = r.flops / t * 1e-9;
  const double gbps = r.bytes / t * 1e-9;
  const double mat_ms = r.mat_ms, ref_ms = r.ref_ms;
  nlohmann::json j{
      {"ms", t * 1e3},
      {"gflops", gflops},
      {"peak_gflops", r.peak.fma_gflops},
      {"peak_fraction", gflops / r.peak.fma_gflops},
      {"gbps", gbps},
      {"peak_gbps", r.peak.read_gbps},
      {"bandwidth_fraction", gbps / r.peak.read_gbps},
      {"stream_gbps", r.stream_gbps},
      {"stream_fraction", r.stream_gbps > 0 ? gbps / r.stream_gbps : 0.0},
      {"reference_ms", ref_ms},
      {"materialised_ms", mat_ms},
      {"materialised_gflops", mat_ms > 0 ? r.flops / (mat_ms * 1e-3) * 1e-9 : 0.0},
      {"speedup_vs_materialised", mat_ms > 0 ? mat_ms / (t * 1e3) : 0.0},
      {"materialised_library", std::string(kernels::cpu::attention_materialised_library())},
      {"materialised_batch", r.mat ? r.mat_batch : 0},
      {"materialised_kv_heads", r.mat ? r.mat_kv_heads : 0},
      {"speedup_vs_reference", ref_ms > 0 ? ref_ms / (t * 1e3) : 0.0},
      {"reps", r.reps},
      {"max_rss_mib", r.rss_mib},
      {"io_mib", r.io_mib},
      {"threads", r.threads},
      {"target", std::string(attention_cpu_target())},
      {"bf16_path", std::string(attention_bf16_path(a.head_dim))},
      {"backward", a.backward},
      {"shape",
       {{"batch", a.batch},
        {"n_q", a.n_q},
        {"n_kv", a.n_kv},
        {"heads", a.heads},
        {"kv_heads", a.kv_heads},
        {"head_dim", a.head_dim},
        {"causal", a.causal},
        {"dtype", a.dtype},
        {"precision", enum_name(kPrecisionNames, a.precision)},
        {"int8_scores", a.int8_scores}}}};
  std::printf("%s\n", j.dump().c_str());
}

void print_text(const BenchArgs& a, const Results& r) {
  const double t = r.t;
  const double gflops = r.flops / t * 1e-9;
  const double gbps = r.bytes / t * 1e-9;
  const kernels::MachinePeak& peak = r.peak;
  std::printf(
      "%s  batch %lld  n_q %lld  n_kv %lld  heads %lld/%lld  head_dim %lld  %s  kv %s  "
      "precision %s%s\n",
      a.backward ? "attention backward" : "attention", (long long)a.batch, (long long)a.n_q,
      (long long)a.n_kv, (long long)a.heads, (long long)a.kv_heads, (long long)a.head_dim,
      a.causal ? "causal" : "non-causal", a.dtype.c_str(),
      enum_name(kPrecisionNames, a.precision).c_str(),
      a.int8_scores ? ", int8 scores (decode rows)" : "");
  std::printf("machine    %d threads, target %s: FMA peak %.1f GFLOP/s, read bandwidth %.1f GB/s\n",
              r.threads, peak.target, peak.fma_gflops, peak.read_gbps);
  if (a.precision == Precision::bf16) {
    const std::string_view path = attention_bf16_path(a.head_dim);
    std::printf("bf16 mode  prefill products on %s\n", path == "amx" ? "AMX tiles (tdpbf16ps)"
                                                       : path == "avx512_bf16"
                                                           ? "AVX512_BF16 dot products (vdpbf16ps)"
                                                           : "fp32 FMAs of bf16-rounded operands");
  }
  std::printf(
      "qkv        %.3f ms (median of %d)  %.1f GFLOP/s = %.1f%% of peak  %.1f GB/s = %.1f%% of "
      "bandwidth\n",
      t * 1e3, r.reps, gflops, 100 * gflops / peak.fma_gflops, gbps, 100 * gbps / peak.read_gbps);
  if (r.stream_gbps > 0) {
    std::printf(
        "stream     the same K and V bytes read by a plain loop (%d threads, 4 KiB of each in "
        "turn): %.1f GB/s; qkv reaches %.1f%% of it\n",
        r.threads, r.stream_gbps, 100 * gbps / r.stream_gbps);
  }
  std::printf("memory     peak RSS %.0f MiB, of which %s %.0f MiB\n", r.rss_mib,
              a.backward ? "q, k, v, out, dout and dq, dk, dv are" : "q, k, v and out are",
              r.io_mib);
  if (r.mat_ms > 0) {
    const double mg = r.flops / (r.mat_ms * 1e-3) * 1e-9;
    const bool sliced = r.mat_batch < a.batch || r.mat_kv_heads < a.kv_heads;
    const std::string slice = sliced ? "; sequence 1 of " + std::to_string(a.batch) +
                                           ", kv heads " + std::to_string(r.mat_kv_heads) + " of " +
                                           std::to_string(a.kv_heads) + " timed, scaled by FLOPs"
                                     : "";
    std::printf(
        "materialised %.3f ms (median of %d; S = Q·Kᵀ and P·V by %s%s)  %.1f GFLOP/s = %.1f%% of "
        "peak  qkv is %.2fx faster\n",
        r.mat_ms, r.mat_reps, std::string(kernels::cpu::attention_materialised_library()).c_str(),
        slice.c_str(), mg, 100 * mg / peak.fma_gflops, r.mat_ms / (t * 1e3));
  }
  if (r.ref_ms > 0) {
    std::printf("reference  %.1f ms (64 rows timed, scaled by FLOPs)  qkv is %.0fx faster\n",
                r.ref_ms, r.ref_ms / (t * 1e3));
  }
}

void run_bench(const BenchArgs& args) {
  if (args.mpi) {
    if (args.n_kv != 0 && args.n_kv != args.n_q) {
      throw InvalidArgument("--mpi: the ring splits one sequence; --n-kv must equal --n-q");
    }
    MpiBenchArgs m;
    m.batch = args.batch, m.n_seq = args.n_q, m.heads = args.heads, m.kv_heads = args.kv_heads;
    m.head_dim = args.head_dim, m.causal = args.causal, m.dtype = args.dtype;
    m.threads = args.threads, m.reps = args.reps, m.delay_us = args.mpi_delay_us;
    m.json = args.json, m.backward = args.backward;
    run_bench_mpi(m);
    return;
  }
  if (args.mpi_delay_us != 0) throw InvalidArgument("--mpi-delay-us needs --mpi");
  const BenchArgs a = checked(args);
  const int threads = resolve_threads(a.threads);
  Problem p(a, threads);
  const Results r = measure(a, p, threads);
  if (a.json) {
    print_json(a, r);
  } else {
    print_text(a, r);
  }
}

void setup_bench(CLI::App& app) {
  app.require_subcommand(1);
  auto* att = app.add_subcommand("attention", "Time the CPU attention kernel on one shape");
  auto a = std::make_shared<BenchArgs>();
  att->add_option("--batch", a->batch, "Sequences")->capture_default_str();
  att->add_option("--n-q", a->n_q, "Queries per sequence")->capture_default_str();
  att->add_option("--n-kv", a->n_kv, "Keys per sequence (default: n-q)");
  att->add_option("--heads", a->heads, "Query heads")->capture_default_str();
  att->add_option("--kv-heads", a->kv_heads, "Key/value heads (default: heads)");
  att->add_option("--head-dim", a->head_dim, "Head dimension")->capture_default_str();
  att->add_flag("--causal", a->causal, "Causal mask");
  att->add_option("--dtype", a->dtype, "K/V dtype: f32, f16, bf16, q8_0")->capture_default_str();
  add_enum_option(*att, "--precision", a->precision, "Arithmetic: f32, or bf16 (rounded operands)",
                  kPrecisionNames);
  att->add_flag("--int8-scores", a->int8_scores,
                "q8_0 K: decode scores by integer dot products with q rounded to 8-bit blocks, as "
                "llama.cpp (AttentionOptions::int8_scores)");
  add_threads_option(*att, a->threads);
  att->add_option("--reps", a->reps, "Timed repetitions (0: about one second)");
  add_json_flag(*att, a->json);
  att->add_flag("--no-reference", a->no_reference,
                "Skip timing the reference and the materialised peer");
  att->add_flag("--backward", a->backward,
                "Time attention_backward (dq, dk, dv; FLOPs counted as 2.5x the forward's)");
  att->add_flag("--mpi", a->mpi,
                "Ring attention over the ranks of `mpirun -np N qkv bench attention --mpi`: "
                "per-rank compute and communication times against one process with N times "
                "the threads (--n-q is the whole sequence; --threads is per rank, default 1)");
  att->add_option("--mpi-delay-us", a->mpi_delay_us,
                  "With --mpi: emulate a slower link; each K/V block arrives no earlier than "
                  "this many microseconds after it was sent");
  att->callback([a] { run_bench(*a); });
  add_bench_model(app);
}

Registrar reg("bench", "Benchmarks against this machine's measured limits", setup_bench);

}  // namespace
}  // namespace cmd_bench
}  // namespace qkv::app
