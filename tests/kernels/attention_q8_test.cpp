// Quantized K/V (DType::q8_0, ggml's Q8_0 blocks along head_dim): the fast CPU kernel on every
// target against the reference fed with the same K/V dequantized to fp32 by the scalar oracle
// (kernels/quant/dequant.h), over random shapes, masks, layouts and thread counts; the decode and
// prefill paths, attention_probs, and the errors for views that cannot hold blocks.
//
// Tolerance: 3e-5 (max |out - ref| / (1 + |ref|), same for lse), that of the f32/f16/bf16 caches
// (attention_test.cpp). A dequantized q8_0 value d * q (f16 d, |q| <= 127) is exact in fp32, and
// the kernel computes with the very values the reference reads, multiplying the bytes by d before
// its products or, in the decode kernels with few rows per kv head, a block's products by d after
// summing them (one more fp32 rounding per block); what differs is fp32 accumulation and the exp2
// polynomial, as for f16.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "attention_harness.h"
#include "common/test_scale.h"
#include "qkv/error.h"

namespace qkv::test {
namespace {

constexpr double kTolQ8 = 3e-5;

struct Q8Errors {
  double out = 0, lse = 0;
  bool nan = false, inf_mismatch = false, guards_ok = true;
};

// c.kv_dtype must be q8_0: the fast kernel on the q8_0 views, the reference on their fp32 twins.
Q8Errors run_q8(Case c, const kernels::cpu::TargetOps& target, int threads,
                bool spread_scales = false) {
  attach_options(c);
  Inputs in = make_inputs(c);
  if (spread_scales) {
    std::mt19937 rng(c.seed + 1);
    spread_block_scales(in.k, rng);
    spread_block_scales(in.v, rng);
  }
  const Tensor kf = dequantized(in.k), vf = dequantized(in.v);
  const std::array<int64_t, 4> oshape{c.batch, c.n_q, c.n_head, c.head_dim_v};
  Output fast(oshape, c.layout), ref(oshape, Layout::bshd);
  AttentionOptions fo = c.opt;
  fo.n_threads = threads;
  kernels::attention_cpu_on(
      kernels::make_problem(in.q.view, in.k.view, in.v.view, fast.view, fast.lse_view(), fo),
      target);
  AttentionOptions ro = c.opt;
  ro.precision = Precision::f32;
  kernels::attention_reference(
      kernels::make_problem(in.q.view, kf.view, vf.view, ref.view, ref.lse_view(), ro));
  Q8Errors e;
  e.guards_ok = fast.guards_intact();
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t i = 0; i < c.n_q; ++i)
      for (int64_t h = 0; h < c.n_head; ++h) {
        for (int64_t d = 0; d < c.head_dim_v; ++d) {
          const double a = fast.at(b, i, h, d), r = ref.at(b, i, h, d);
          e.nan |= std::isnan(a);
          e.out = std::max(e.out, std::fabs(a - r) / (1 + std::fabs(r)));
        }
        const size_t li = static_cast<size_t>((b * c.n_head + h) * c.n_q + i);
        const double a = fast.lse_view()[li], r = ref.lse_view()[li];
        e.nan |= std::isnan(a);
        if (std::isinf(a) || std::isinf(r)) {
          e.inf_mismatch |= a != r;
        } else {
          e.lse = std::max(e.lse, std::fabs(a - r) / (1 + std::fabs(r)));
        }
      }
  return e;
}

void expect_q8_close(const Case& c, const kernels::cpu::TargetOps& t, int threads,
                     bool spread_scales = false) {
  const Q8Errors e = run_q8(c, t, threads, spread_scales);
  const std::string where = c.name() + " target " + t.name + " threads " + std::to_string(threads);
  EXPECT_FALSE(e.nan) << where;
  EXPECT_TRUE(e.guards_ok) << "wrote outside the output view: " << where;
  EXPECT_FALSE(e.inf_mismatch) << where;
  EXPECT_LE(e.out, kTolQ8) << where;
  EXPECT_LE(e.lse, kTolQ8) << where;
}

Case random_q8_case(std::mt19937& rng) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Case c;
  c.kv_dtype = DType::q8_0;
  c.seed = rng();
  c.batch = pick(1, 3);
  const int groups[] = {1, 1, 2, 3, 4, 8};
  c.n_head_kv = pick(1, 3);
  c.n_head = c.n_head_kv * groups[pick(0, 5)];
  const int dims[] = {32, 64, 96, 128, 256};
  c.head_dim = dims[pick(0, 4)];
  c.head_dim_v = pick(0, 3) == 0 ? dims[pick(0, 4)] : c.head_dim;
  c.n_kv = pick(1, 200);
  c.n_q = pick(0, 2) == 0 ? c.n_kv : pick(1, 150);
  if (pick(0, 2) == 0) c.n_q = pick(1, 4);  // decode-like
  c.layout = static_cast<Layout>(pick(0, 2));
  c.value_range = pick(0, 3) == 0 ? 4.f : 1.f;
  c.opt.causal = pick(0, 1);
  if (pick(0, 3) == 0) {
    for (int b = 0; b < c.batch; ++b) c.kv_lengths.push_back(pick(0, static_cast<int>(c.n_kv)));
  }
  if (pick(0, 3) == 0) c.opt.window_left = pick(0, 40);
  if (pick(0, 5) == 0) {
    c.additive.resize(static_cast<size_t>(c.n_q * c.n_kv));
    for (auto& m : c.additive)
      m = pick(0, 5) == 0 ? -INFINITY : std::uniform_real_distribution<float>(-2, 2)(rng);
  }
  if (pick(0, 5) == 0) {
    for (int h = 0; h < c.n_head; ++h) c.alibi.push_back(std::pow(2.f, -8.f * (h + 1) / c.n_head));
  }
  if (pick(0, 5) == 0) c.opt.softcap = 5.f;
  return c;
}

TEST(AttentionQ8, RandomShapesMasksLayoutsTargets) {
  std::mt19937 rng(808);
  for (int n = 0; n < cases(30); ++n) {
    const Case c = random_q8_case(rng);
    for (const auto* t : runnable_targets()) expect_q8_close(c, *t, 1 + n % 2);
  }
}

TEST(AttentionQ8, DecodeEveryRowCountAndFixedHeadDims) {
  // The vector decode kernels: rows per kv head 1..8 (GQA groups times a few queries), head_dim
  // 64 and 128 (fixed at compile time) and 96 (read at run time), with a long cache that the
  // decode plan splits into chunks merged by LSE.
  for (int g = 1; g <= 8; ++g) {
    for (const int64_t d : {64, 96, 128}) {
      Case c;
      c.kv_dtype = DType::q8_0;
      c.batch = 1 + g % 2, c.n_head_kv = 1 + g % 3, c.n_head = c.n_head_kv * g, c.n_q = 1;
      c.head_dim = c.head_dim_v = d;
      c.n_kv = g == 3 ? 9000 : 50 + 37 * g;  // 9000 keys: several 2 MiB chunks for d = 128
      c.opt.causal = g % 2 == 0;
      c.seed = static_cast<uint32_t>(g * 131 + d);
      for (const auto* t : runnable_targets()) expect_q8_close(c, *t, 2);
    }
  }
}

TEST(AttentionQ8, DecodeBlocksOfVeryDifferentScales) {
  // Each block's scale applied to its own bytes, in both decode kernels' forms (bytes times the
  // scale, or a block's products summed then times the scale: the latter for G * W < 32, so G 1 on
  // avx512, G <= 3 on avx2, every G on the scalar target), for K and V, head_dim 32 (one block)
  // to 128, a tile boundary inside the cache (32 keys per decode tile), and 1 or 2 threads.
  for (int g : {1, 2, 3, 4, 8}) {
    for (const int64_t d : {32, 64, 96, 128}) {
      Case c;
      c.kv_dtype = DType::q8_0;
      c.n_head_kv = 2, c.n_head = 2 * g, c.n_q = 1;
      c.head_dim = c.head_dim_v = d;
      c.n_kv = 75 + g;
      c.value_range = 2.f;
      c.seed = static_cast<uint32_t>(g * 17 + d);
      for (const auto* t : runnable_targets()) expect_q8_close(c, *t, 1 + g % 2, true);
    }
  }
}

TEST(AttentionQ8, PrefillAcrossSharedTilesAndBf16Mode) {
  Case c;
  c.kv_dtype = DType::q8_0;
  c.batch = 2, c.n_q = 300, c.n_kv = 300, c.n_head = 4, c.n_head_kv = 2, c.head_dim = 64;
  c.head_dim_v = 64;
  c.opt.causal = true;
  for (const auto* t : runnable_targets()) expect_q8_close(c, *t, 2);
  // bf16 mode reads the q8_0 values like any other K/V; its error is the bf16 rounding's
  // (attention_test.cpp, kTolBf16Mode).
  c.opt.precision = Precision::bf16;
  for (const auto* t : runnable_targets()) {
    const Q8Errors e = run_q8(c, *t, 2);
    EXPECT_LE(e.out, 3e-2) << t->name;
    EXPECT_FALSE(e.nan) << t->name;
  }
}

TEST(AttentionQ8, ReferenceBackendReadsBlocks) {
  // Backend::reference through the public API on q8_0 views equals the reference on their fp32
  // twins exactly (the same doubles in the same order).
  Case c;
  c.kv_dtype = DType::q8_0;
  c.n_q = 5, c.n_kv = 40, c.n_head = 4, c.n_head_kv = 2, c.head_dim = c.head_dim_v = 64;
  const Inputs in = make_inputs(c);
  const Tensor kf = dequantized(in.k), vf = dequantized(in.v);
  Output a({1, 5, 4, 64}, Layout::bshd), b({1, 5, 4, 64}, Layout::bshd);
  AttentionOptions o;
  o.backend = Backend::reference;
  attention(in.q.view, in.k.view, in.v.view, a.view, a.lse_view(), o);
  attention(in.q.view, kf.view, vf.view, b.view, b.lse_view(), o);
  EXPECT_EQ(a.buf, b.buf);
  EXPECT_EQ(a.lse, b.lse);
}

TEST(AttentionQ8, ProbsFromTheLseMatchTheDequantizedReference) {
  for (int n = 0; n < 6; ++n) {
    Case c;
    c.kv_dtype = DType::q8_0;
    c.batch = 1, c.n_q = n < 3 ? 1 : 30, c.n_kv = 100 + 13 * n, c.n_head = 4;
    c.n_head_kv = n % 2 ? 2 : 4, c.head_dim = c.head_dim_v = n % 3 == 2 ? 96 : 64;
    c.opt.causal = n >= 3;
    if (n == 4) c.alibi = {0.5f, 0.25f, 0.1f, 0.05f};  // the scalar path
    c.seed = static_cast<uint32_t>(n + 40);
    attach_options(c);
    const Inputs in = make_inputs(c);
    const Tensor kf = dequantized(in.k);
    Output o({1, c.n_q, 4, c.head_dim_v}, Layout::bshd);
    attention(in.q.view, in.k.view, in.v.view, o.view, o.lse_view(), c.opt);
    const std::vector<int64_t> rows{0, c.n_q - 1};
    const int64_t h = n % 4;
    std::vector<float> probs(rows.size() * static_cast<size_t>(c.n_kv)),
        want(rows.size() * static_cast<size_t>(c.n_kv));
    attention_probs(in.q.view, in.k.view, o.lse_view(), 0, h, rows, probs.data(), c.opt);
    // The same lse with the fp32 twin of K: the probabilities of the dequantized problem.
    AttentionOptions ro = c.opt;
    ro.backend = Backend::reference;
    attention_probs(in.q.view, kf.view, o.lse_view(), 0, h, rows, want.data(), ro);
    for (size_t j = 0; j < probs.size(); ++j) EXPECT_NEAR(probs[j], want[j], 2e-6) << n << " " << j;
  }
}

TEST(AttentionQ8, ViewsThatCannotHoldBlocksAreRefused) {
  std::vector<float> q(4 * 64, 0.f), out(4 * 64);
  std::vector<uint8_t> kv(8 * 2 * 96 / 32 * 34, 0);
  const View4 qv = View4::dense(q.data(), DType::f32, {1, 2, 2, 64});
  const MutView4 ov = MutView4::dense(out.data(), {1, 2, 2, 64});
  auto expect_error = [&](const View4& k, const View4& v, const std::string& words) {
    try {
      attention(qv, k, v, ov, {});
      ADD_FAILURE() << "no error for " << words;
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  const View4 good = View4::dense(kv.data(), DType::q8_0, {1, 8, 2, 64});
  View4 unit = good;
  unit.stride[3] = 2;
  expect_error(unit, good, "stride[3] must be 1");
  View4 odd = good;
  odd.stride[2] = 80;
  expect_error(odd, good, "multiple of the block size");
  const View4 q48 = View4::dense(q.data(), DType::f32, {1, 2, 2, 48});
  const View4 k48 = View4::dense(kv.data(), DType::q8_0, {1, 8, 2, 48});
  const MutView4 o48 = MutView4::dense(out.data(), {1, 2, 2, 48});
  EXPECT_THROW(attention(q48, k48, k48, o48, {}), InvalidArgument);
  std::vector<uint16_t> half(8 * 2 * 64);
  expect_error(good, View4::dense(half.data(), DType::f16, {1, 8, 2, 64}), "same dtype");
  EXPECT_EQ(parse_dtype("q8_0"), DType::q8_0);
  EXPECT_EQ(dtype_bytes(DType::q8_0, 64), 68);
}

}  // namespace
}  // namespace qkv::test
