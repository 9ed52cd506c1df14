// Correctness check and benchmark of the CUDA attention kernels, for a lent GPU machine
// (bench/gpu/run.sh). No GoogleTest there, so this is a plain program:
//   qkv_cuda_bench check [n_cases]   random problems against the float64 CPU reference
//   qkv_cuda_bench bench [out.json]  timings (CUDA events, median) of the benchmark shapes
// Inputs are fresh random numbers each run (the seed is printed); outputs are poisoned with NaN
// before every call, so an unwritten element fails the check.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/half.h"
#include "cuda/attention_cuda_impl.h"
#include "kernels/attention_problem.h"
#include "qkv/attention_cuda.h"

namespace {

using qkv::DType;

#define CHECK_CUDA(x)                                                                          \
  do {                                                                                         \
    cudaError_t e_ = (x);                                                                      \
    if (e_ != cudaSuccess) {                                                                   \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(2);                                                                            \
    }                                                                                          \
  } while (0)

uint16_t to_half_bits(float x, DType t) {
  return t == DType::bf16 ? qkv::core::f32_to_bf16(x) : qkv::core::f32_to_f16(x);
}
float from_half_bits(uint16_t h, DType t) {
  return t == DType::bf16 ? qkv::core::bf16_to_f32(h) : qkv::core::f16_to_f32(h);
}

struct Case {
  DType dtype = DType::bf16;
  DType out_dtype = DType::f32;
  int batch = 1, n_q = 1, n_kv = 1, n_head = 1, n_head_kv = 1, head_dim = 64;
  bool causal = false;
  bool kv_lengths = false, q_offsets = false;
  int64_t window_left = -1, window_right = -1;
  bool bhsd_layout = false;  // q/k/v stored [batch, head, seq, dim] (strided views)
  int force_splits = 0;
  qkv::cuda::FlashKernel kernel = qkv::cuda::FlashKernel::automatic;
};

const char* kernel_name(qkv::cuda::FlashKernel k) {
  switch (k) {
    case qkv::cuda::FlashKernel::mma:
      return "mma";
    case qkv::cuda::FlashKernel::sm90:
      return "sm90";
    case qkv::cuda::FlashKernel::sm90_1wg:
      return "sm90_1wg";
    default:
      return "auto";
  }
}

std::string describe(const Case& c) {
  char buf[256];
  std::snprintf(
      buf, sizeof buf, "%s %s->%s b%d q%d kv%d h%d/%d d%d%s%s%s win(%lld,%lld)%s splits=%d",
      kernel_name(c.kernel), std::string(qkv::dtype_name(c.dtype)).c_str(),
      std::string(qkv::dtype_name(c.out_dtype)).c_str(), c.batch, c.n_q, c.n_kv, c.n_head,
      c.n_head_kv, c.head_dim, c.causal ? " causal" : "", c.kv_lengths ? " kv_len" : "",
      c.q_offsets ? " q_off" : "", static_cast<long long>(c.window_left),
      static_cast<long long>(c.window_right), c.bhsd_layout ? " bhsd" : "", c.force_splits);
  return buf;
}

// A device tensor [batch, seq, head, dim] with host copy; bhsd stores it [batch, head, seq, dim].
struct Tensor {
  std::vector<uint16_t> host;
  void* dev = nullptr;
  qkv::View4 view;
};

Tensor make_input(std::mt19937_64& rng, DType t, int b, int s, int h, int d, bool bhsd) {
  Tensor x;
  const size_t n = static_cast<size_t>(b) * s * h * d;
  x.host.resize(n);
  std::normal_distribution<float> dist(0.f, 1.f);
  for (auto& e : x.host) e = to_half_bits(dist(rng), t);
  CHECK_CUDA(cudaMalloc(&x.dev, n * 2));
  CHECK_CUDA(cudaMemcpy(x.dev, x.host.data(), n * 2, cudaMemcpyHostToDevice));
  x.view.data = x.dev;
  x.view.dtype = t;
  x.view.shape = {b, s, h, d};
  if (bhsd) {
    x.view.stride = {int64_t{h} * s * d, d, int64_t{s} * d, 1};
  } else {
    x.view.stride = qkv::dense_strides(x.view.shape);
  }
  return x;
}

// Runs one case; returns true when it passes.
bool run_case(const Case& c, std::mt19937_64& rng, bool verbose) {
  Tensor q = make_input(rng, c.dtype, c.batch, c.n_q, c.n_head, c.head_dim, c.bhsd_layout);
  Tensor k = make_input(rng, c.dtype, c.batch, c.n_kv, c.n_head_kv, c.head_dim, c.bhsd_layout);
  Tensor v = make_input(rng, c.dtype, c.batch, c.n_kv, c.n_head_kv, c.head_dim, c.bhsd_layout);
  std::vector<int32_t> kv_len(c.batch), q_off(c.batch);
  for (int b = 0; b < c.batch; ++b) {
    kv_len[b] = static_cast<int32_t>(rng() % (c.n_kv + 1));
    if (b == 0) kv_len[b] = c.n_kv;
    q_off[b] = static_cast<int32_t>(rng() % (c.n_kv + 1));
  }
  qkv::AttentionOptions opt;
  opt.causal = c.causal;
  opt.window_left = c.window_left;
  opt.window_right = c.window_right;
  if (c.kv_lengths) opt.kv_lengths = kv_len;
  if (c.q_offsets) opt.q_offsets = q_off;

  const std::array<int64_t, 4> oshape{c.batch, c.n_q, c.n_head, c.head_dim};
  const size_t n_out = static_cast<size_t>(c.batch) * c.n_q * c.n_head * c.head_dim;
  const int osize = qkv::dtype_size(c.out_dtype);
  // Guard elements after out and lse must survive.
  constexpr size_t kGuard = 64;
  void* out_dev = nullptr;
  float* lse_dev = nullptr;
  const size_t n_lse = static_cast<size_t>(c.batch) * c.n_head * c.n_q;
  CHECK_CUDA(cudaMalloc(&out_dev, (n_out + kGuard) * osize));
  CHECK_CUDA(cudaMalloc(&lse_dev, (n_lse + kGuard) * 4));
  CHECK_CUDA(cudaMemset(out_dev, 0xff, (n_out + kGuard) * osize));  // NaN in every dtype
  CHECK_CUDA(cudaMemset(lse_dev, 0xff, (n_lse + kGuard) * 4));
  qkv::OutView4 out = qkv::OutView4::dense(out_dev, c.out_dtype, oshape);

  const qkv::cuda::FlashParams f =
      qkv::cuda::make_flash_params(q.view, k.view, v.view, out, {lse_dev, n_lse}, opt);
  qkv::cuda::run_flash(f, opt, nullptr, c.force_splits, c.kernel);
  CHECK_CUDA(cudaDeviceSynchronize());

  std::vector<unsigned char> out_raw((n_out + kGuard) * osize);
  std::vector<float> lse((n_lse + kGuard));
  CHECK_CUDA(cudaMemcpy(out_raw.data(), out_dev, out_raw.size(), cudaMemcpyDeviceToHost));
  CHECK_CUDA(cudaMemcpy(lse.data(), lse_dev, lse.size() * 4, cudaMemcpyDeviceToHost));

  // The reference on the same (rounded) inputs, in double.
  auto host_view = [&](const Tensor& t) {
    qkv::View4 hv = t.view;
    hv.data = t.host.data();
    return hv;
  };
  std::vector<float> ref(n_out), ref_lse(n_lse);
  const auto prob = qkv::kernels::make_problem(host_view(q), host_view(k), host_view(v),
                                               qkv::MutView4::dense(ref.data(), oshape), ref_lse,
                                               opt, true, true);
  qkv::kernels::attention_reference(prob);

  bool ok = true;
  double err2 = 0, ref2 = 0, max_abs = 0, lse_err = 0;
  int bad_nonfinite = 0, bad_guard = 0, bad_lse = 0;
  for (size_t i = 0; i < n_out; ++i) {
    float x;
    if (c.out_dtype == DType::f32) {
      std::memcpy(&x, out_raw.data() + i * 4, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, out_raw.data() + i * 2, 2);
      x = from_half_bits(h, c.out_dtype);
    }
    if (!std::isfinite(x)) {
      ++bad_nonfinite;
      continue;
    }
    const double d = static_cast<double>(x) - ref[i];
    err2 += d * d;
    ref2 += static_cast<double>(ref[i]) * ref[i];
    max_abs = std::max(max_abs, std::abs(d));
  }
  for (size_t i = n_out * osize; i < out_raw.size(); ++i) bad_guard += out_raw[i] != 0xff;
  for (size_t i = 0; i < n_lse; ++i) {
    if (std::isinf(ref_lse[i])) {
      bad_lse += !(std::isinf(lse[i]) && lse[i] < 0);
    } else if (!std::isfinite(lse[i])) {
      ++bad_lse;
    } else {
      lse_err = std::max(lse_err, static_cast<double>(std::abs(lse[i] - ref_lse[i])));
    }
  }
  for (size_t i = n_lse; i < lse.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &lse[i], 4);
    bad_guard += u != 0xffffffffu;
  }
  const double rel = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  // Tolerances. The reference sees the same rounded inputs, so the error comes from P rounded to
  // the input dtype before P V (relative 2^-9 for bf16, 2^-12 for f16, averaging down over keys)
  // and from rounding the output (same sizes again when out is 16-bit). Largest errors seen on an
  // H100 (2026-11-27, 168 cases): bf16 2.2e-3, f16 with f32 out 1.8e-4, f16 out 2.4e-4.
  const bool out16 = c.out_dtype != DType::f32;
  const double tol = (c.dtype == DType::bf16 || c.out_dtype == DType::bf16) ? 1e-2
                     : out16                                                ? 2e-3
                                                                            : 1e-3;
  // lse comes from fp32 scores of exact products: errors of fp32 accumulation and ex2.approx
  // (largest seen 1.4e-6).
  const double lse_tol = 1e-4;
  ok = bad_nonfinite == 0 && bad_guard == 0 && bad_lse == 0 && rel <= tol && lse_err <= lse_tol;
  if (verbose || !ok) {
    std::printf(
        "%s %-70s rel %.2e (tol %.0e) max_abs %.2e lse_err %.2e nonfinite %d guard %d "
        "lse_bad %d\n",
        ok ? "ok  " : "FAIL", describe(c).c_str(), rel, tol, max_abs, lse_err, bad_nonfinite,
        bad_guard, bad_lse);
  }
  for (void* p : {q.dev, k.dev, v.dev, out_dev, static_cast<void*>(lse_dev)}) cudaFree(p);
  return ok;
}

int check(int n_random) {
  const uint64_t seed =
      std::random_device{}() ^
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  std::printf("check: seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  int fails = 0, total = 0;
  // Fixed cases first: each feature alone, odd tails, decode with splits, fully masked rows.
  std::vector<Case> cases;
  for (int d : {64, 96, 128, 256}) {
    for (DType t : {DType::bf16, DType::f16}) {
      Case c;
      c.dtype = t;
      c.head_dim = d;
      c.batch = 2;
      c.n_q = 130;
      c.n_kv = 200;
      c.n_head = 4;
      c.n_head_kv = 2;
      cases.push_back(c);
      c.causal = true;
      cases.push_back(c);
      c.out_dtype = t;
      c.n_q = c.n_kv = 193;
      cases.push_back(c);
    }
  }
  {
    Case c;  // decode: GQA 8/2, long KV, forced and planned splits
    c.batch = 3;
    c.n_q = 1;
    c.n_kv = 3000;
    c.n_head = 8;
    c.n_head_kv = 2;
    c.head_dim = 128;
    for (int s : {0, 1, 3, 7}) {
      c.force_splits = s;
      cases.push_back(c);
    }
    c.kv_lengths = true;  // ragged lengths, one of which may be 0 (fully masked)
    c.force_splits = 5;
    cases.push_back(c);
    c.n_q = 4;  // speculative decode: causal, a few queries
    c.causal = true;
    c.out_dtype = DType::bf16;
    cases.push_back(c);
  }
  {
    Case c;  // MQA, q_offsets, window, bhsd storage
    c.n_head = 6;
    c.n_head_kv = 1;
    c.head_dim = 64;
    c.batch = 2;
    c.n_q = 150;
    c.n_kv = 400;
    c.causal = true;
    c.q_offsets = true;
    c.bhsd_layout = true;
    cases.push_back(c);
    c.q_offsets = false;
    c.window_left = 37;
    c.window_right = 5;
    c.causal = false;
    cases.push_back(c);
    c.kv_lengths = true;
    c.causal = true;
    c.n_q = 600;  // more queries than keys: early rows see no key with bottom-right alignment
    cases.push_back(c);
  }
  // Every case on each kernel that can run it (the automatic choice included).
  const bool sm90 = qkv::cuda::sm90_device();
  std::printf("check: sm90 kernel %s\n", sm90 ? "available" : "not available on this device");
  for (const auto& base : cases) {
    for (auto k : {qkv::cuda::FlashKernel::automatic, qkv::cuda::FlashKernel::mma,
                   qkv::cuda::FlashKernel::sm90, qkv::cuda::FlashKernel::sm90_1wg}) {
      const bool hopper_only =
          k == qkv::cuda::FlashKernel::sm90 || k == qkv::cuda::FlashKernel::sm90_1wg;
      if (hopper_only && (!sm90 || (base.head_dim != 64 && base.head_dim != 128))) continue;
      Case c = base;
      c.kernel = k;
      ++total;
      fails += !run_case(c, rng, true);
    }
  }
  for (int i = 0; i < n_random; ++i) {
    Case c;
    const int dims[] = {64, 96, 128, 256};
    c.head_dim = dims[rng() % 4];
    c.dtype = rng() % 2 ? DType::bf16 : DType::f16;
    const DType outs[] = {DType::f32, DType::f16, DType::bf16};
    c.out_dtype = outs[rng() % 3];
    c.batch = 1 + rng() % 3;
    c.n_head_kv = 1 + rng() % 3;
    c.n_head = c.n_head_kv * (1 + rng() % 4);
    c.n_q = 1 + rng() % 200;
    c.n_kv = 1 + rng() % 500;
    c.causal = rng() % 2;
    c.kv_lengths = rng() % 3 == 0;
    c.q_offsets = rng() % 4 == 0;
    if (rng() % 4 == 0) c.window_left = rng() % 100;
    if (rng() % 6 == 0) c.window_right = rng() % 50;
    c.bhsd_layout = rng() % 3 == 0;
    if (rng() % 4 == 0) c.force_splits = 1 + rng() % 6;
    if (sm90 && (c.head_dim == 64 || c.head_dim == 128) && rng() % 2) {
      c.kernel = rng() % 2 ? qkv::cuda::FlashKernel::sm90 : qkv::cuda::FlashKernel::sm90_1wg;
    } else if (rng() % 2) {
      c.kernel = qkv::cuda::FlashKernel::mma;
    }
    ++total;
    fails += !run_case(c, rng, false);
  }
  std::printf("check: %d/%d cases passed\n", total - fails, total);
  return fails == 0 ? 0 : 1;
}

// ---------------------------------------------------------------- benchmark

// Fills device memory with pseudo-random 16-bit floats in [-1, 1) from a hash, on the host in
// blocks (bench inputs are large; cudaMemcpy per block keeps host memory small).
void fill_random(void* dev, size_t n, DType t, uint64_t seed) {
  std::vector<uint16_t> buf(std::min<size_t>(n, size_t{1} << 24));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (auto& e : buf) e = to_half_bits(dist(rng), t);
  for (size_t off = 0; off < n; off += buf.size()) {
    const size_t m = std::min(buf.size(), n - off);
    CHECK_CUDA(
        cudaMemcpy(static_cast<uint16_t*>(dev) + off, buf.data(), m * 2, cudaMemcpyHostToDevice));
  }
}

struct BenchShape {
  const char* name;
  int batch, n_q, n_kv, n_head, n_head_kv, head_dim;
  bool causal;
  int force_splits;
  qkv::cuda::FlashKernel kernel = qkv::cuda::FlashKernel::automatic;
};

double median_ms(const BenchShape& s, const qkv::View4& q, const qkv::View4& k, const qkv::View4& v,
                 const qkv::OutView4& out, std::span<float> lse, int iters) {
  qkv::AttentionOptions opt;
  opt.causal = s.causal;
  const auto f = qkv::cuda::make_flash_params(q, k, v, out, lse, opt);
  for (int i = 0; i < 3; ++i) qkv::cuda::run_flash(f, opt, nullptr, s.force_splits, s.kernel);
  CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<float> times;
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  for (int i = 0; i < iters; ++i) {
    CHECK_CUDA(cudaEventRecord(a));
    qkv::cuda::run_flash(f, opt, nullptr, s.force_splits, s.kernel);
    CHECK_CUDA(cudaEventRecord(b));
    CHECK_CUDA(cudaEventSynchronize(b));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
    times.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

int bench(const char* json_path) {
  using K = qkv::cuda::FlashKernel;
  const BenchShape shapes[] = {
      {"prefill_b4_n4096", 4, 4096, 4096, 32, 32, 128, false, 0},
      {"prefill_b4_n4096_mma", 4, 4096, 4096, 32, 32, 128, false, 0, K::mma},
      {"prefill_b4_n4096_sm90_1wg", 4, 4096, 4096, 32, 32, 128, false, 0, K::sm90_1wg},
      {"prefill_b4_n4096_causal", 4, 4096, 4096, 32, 32, 128, true, 0},
      {"prefill_b4_n4096_causal_mma", 4, 4096, 4096, 32, 32, 128, true, 0, K::mma},
      {"prefill_b4_n4096_causal_sm90_1wg", 4, 4096, 4096, 32, 32, 128, true, 0, K::sm90_1wg},
      {"prefill_b2_n8192", 2, 8192, 8192, 32, 32, 128, false, 0},
      {"prefill_b2_n8192_causal", 2, 8192, 8192, 32, 32, 128, true, 0},
      {"prefill_b4_n4096_d64", 4, 4096, 4096, 32, 32, 64, false, 0},
      {"prefill_b4_n4096_d64_mma", 4, 4096, 4096, 32, 32, 64, false, 0, K::mma},
      {"prefill_b4_n4096_d64_sm90_1wg", 4, 4096, 4096, 32, 32, 64, false, 0, K::sm90_1wg},
      {"prefill_b4_n4096_gqa32_8", 4, 4096, 4096, 32, 8, 128, false, 0},
      {"decode_b16_kv32k_gqa32_8", 16, 1, 32768, 32, 8, 128, false, 0},
      {"decode_b16_kv32k_gqa32_8_s2", 16, 1, 32768, 32, 8, 128, false, 2},
      {"decode_b16_kv32k_gqa32_8_s8", 16, 1, 32768, 32, 8, 128, false, 8},
  };
  FILE* js = json_path ? std::fopen(json_path, "w") : nullptr;
  if (js) std::fprintf(js, "[\n");
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("bench: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  bool first = true;
  for (const auto& s : shapes) {
    const DType t = DType::bf16;
    const size_t nq = size_t{1} * s.batch * s.n_q * s.n_head * s.head_dim;
    const size_t nkv = size_t{1} * s.batch * s.n_kv * s.n_head_kv * s.head_dim;
    void *q, *k, *v, *o;
    float* lse;
    CHECK_CUDA(cudaMalloc(&q, nq * 2));
    CHECK_CUDA(cudaMalloc(&k, nkv * 2));
    CHECK_CUDA(cudaMalloc(&v, nkv * 2));
    CHECK_CUDA(cudaMalloc(&o, nq * 2));
    CHECK_CUDA(cudaMalloc(&lse, size_t{4} * s.batch * s.n_head * s.n_q));
    fill_random(q, nq, t, 1);
    fill_random(k, nkv, t, 2);
    fill_random(v, nkv, t, 3);
    const auto qv = qkv::View4::dense(q, t, {s.batch, s.n_q, s.n_head, s.head_dim});
    const auto kv = qkv::View4::dense(k, t, {s.batch, s.n_kv, s.n_head_kv, s.head_dim});
    const auto vv = qkv::View4::dense(v, t, {s.batch, s.n_kv, s.n_head_kv, s.head_dim});
    const auto ov = qkv::OutView4::dense(o, t, {s.batch, s.n_q, s.n_head, s.head_dim});
    const double ms = median_ms(s, qv, kv, vv, ov, {lse, size_t{1} * s.batch * s.n_head * s.n_q},
                                s.n_q == 1 ? 50 : 20);
    // As qkv::attention_flops (kernels layer, not in this standalone build): 4 * b * h * n_q *
    // n_kv * d, halved for causal square attention.
    const double flops = 4.0 * s.batch * s.n_head * s.n_q * s.n_kv * s.head_dim *
                         (s.causal && s.n_q == s.n_kv ? 0.5 : 1.0);
    const double bytes = 2.0 * (nq * 2 + 2 * nkv);  // q, k, v read once, out written once
    const double tflops = flops / ms * 1e-9, tbs = bytes / ms * 1e-9;
    std::printf("%-32s %8.3f ms  %7.1f TFLOP/s  %6.2f TB/s\n", s.name, ms, tflops, tbs);
    if (js) {
      std::fprintf(js,
                   "%s  {\"name\": \"%s\", \"batch\": %d, \"n_q\": %d, \"n_kv\": %d, "
                   "\"n_head\": %d, \"n_head_kv\": %d, \"head_dim\": %d, \"causal\": %s, "
                   "\"splits\": %d, \"kernel\": \"%s\", \"ms\": %.5f, \"tflops\": %.2f, "
                   "\"tbs\": %.3f}",
                   first ? "" : ",\n", s.name, s.batch, s.n_q, s.n_kv, s.n_head, s.n_head_kv,
                   s.head_dim, s.causal ? "true" : "false", s.force_splits, kernel_name(s.kernel),
                   ms, tflops, tbs);
      first = false;
    }
    for (void* p : {q, k, v, o, static_cast<void*>(lse)}) cudaFree(p);
  }
  if (js) {
    std::fprintf(js, "\n]\n");
    std::fclose(js);
  }
  return 0;
}

// One launch of each prefill kernel at b4 x n4096 x d128 bf16, for ncu.
int profile() {
  using K = qkv::cuda::FlashKernel;
  const int b = 4, n = 4096, h = 32, d = 128;
  const size_t count = size_t{1} * b * n * h * d;
  void *q, *k, *v, *o;
  for (void** p : {&q, &k, &v, &o}) CHECK_CUDA(cudaMalloc(p, count * 2));
  fill_random(q, count, DType::bf16, 1);
  fill_random(k, count, DType::bf16, 2);
  fill_random(v, count, DType::bf16, 3);
  const auto qv = qkv::View4::dense(q, DType::bf16, {b, n, h, d});
  const auto kv = qkv::View4::dense(k, DType::bf16, {b, n, h, d});
  const auto vv = qkv::View4::dense(v, DType::bf16, {b, n, h, d});
  const auto ov = qkv::OutView4::dense(o, DType::bf16, {b, n, h, d});
  qkv::AttentionOptions opt;
  const auto f = qkv::cuda::make_flash_params(qv, kv, vv, ov, {}, opt);
  for (K kern : {K::mma, K::sm90, K::sm90_1wg}) {
    if (kern != K::mma && !qkv::cuda::sm90_device()) continue;
    qkv::cuda::run_flash(f, opt, nullptr, 0, kern);
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "check";
  try {
    if (!qkv::attention_cuda_available()) {
      std::printf("no usable CUDA device (or no code for it in this build)\n");
      return 3;
    }
    if (mode == "check") return check(argc > 2 ? std::atoi(argv[2]) : 200);
    if (mode == "bench") return bench(argc > 2 ? argv[2] : nullptr);
    if (mode == "profile") return profile();
    std::fprintf(stderr, "usage: %s check [n_random] | bench [out.json] | profile\n", argv[0]);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
