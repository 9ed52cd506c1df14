// The int8-scores mode of a q8_0 cache (AttentionOptions::int8_scores): the fast CPU kernel on
// every target against an independent twin, the reference (double accumulation) on the rounded
// query: each scaled query row rounded to 8-bit blocks by the int8 mode's rounding
// (quant::quantize_act_reference, ActBlock32), written back as the fp32 values d_q * q, and run
// with scale 1 against the q8_0 K/V dequantized by the scalar oracle. Its scores are then
// sum_blocks d_q d_k sum(q k) in double, which is what the mode defines.
//
// Tolerance: 3e-5 (max |out - ref| / (1 + |ref|), same for lse), that of the exact q8_0 decode
// (attention_q8_test.cpp). The integer block sums are exact (|sum| <= 32 * 127 * 128 < 2^24, so
// their conversion to fp32 is too); what differs from the twin is one fp32 rounding of d_k d_q
// per block, fp32 accumulation of the block terms, and the exp2 polynomial: the error budget of
// the exact mode. The twin's own rounding of d_q * q to fp32 is 6e-8 relative.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "attention_harness.h"
#include "common/test_scale.h"
#include "kernels/quant/dot_int8.h"
#include "qkv/error.h"

namespace qkv::test {
namespace {

constexpr double kTolInt8Scores = 3e-5;

// The rounded query, dense [batch, n_q, n_head, head_dim]: d_q * q of each scaled value.
Tensor rounded_query(const View4& q, float scale) {
  const auto& s = q.shape;
  Tensor t;
  t.f32.resize(static_cast<size_t>(s[0] * s[1] * s[2] * s[3]));
  std::vector<float> row(static_cast<size_t>(s[3]));
  kernels::quant::ActBlock32 a;
  size_t o = 0;
  for (int64_t b = 0; b < s[0]; ++b)
    for (int64_t i = 0; i < s[1]; ++i)
      for (int64_t h = 0; h < s[2]; ++h) {
        for (int64_t c = 0; c < s[3]; ++c) row[c] = view_element(q, b, i, h, c) * scale;
        for (int64_t c0 = 0; c0 < s[3]; c0 += 32) {
          kernels::quant::quantize_act_reference(kernels::quant::QuantType::q8_0, row.data() + c0,
                                                 32, &a);
          for (int c = 0; c < 32; ++c) t.f32[o++] = a.d * static_cast<float>(a.q[c]);
        }
      }
  t.view = View4::dense(t.f32.data(), DType::f32, s);
  return t;
}

struct Int8Errors {
  double out = 0, lse = 0;
  bool nan = false, inf_mismatch = false, guards_ok = true;
};

Int8Errors compare_outputs(Output& fast, Output& ref, const Case& c) {
  Int8Errors e;
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

// The int8 mode on `target` against the twin.
void expect_int8_close(Case c, const kernels::cpu::TargetOps& target, int threads, bool spread) {
  attach_options(c);
  c.opt.int8_scores = true;
  Inputs in = make_inputs(c);
  if (spread) {
    std::mt19937 rng(c.seed + 1);
    spread_block_scales(in.k, rng);
    spread_block_scales(in.v, rng);
  }
  const std::array<int64_t, 4> oshape{c.batch, c.n_q, c.n_head, c.head_dim_v};
  Output fast(oshape, c.layout), ref(oshape, Layout::bshd);
  AttentionOptions fo = c.opt;
  fo.n_threads = threads;
  const kernels::AttentionProblem p =
      kernels::make_problem(in.q.view, in.k.view, in.v.view, fast.view, fast.lse_view(), fo);
  ASSERT_TRUE(p.int8_scores()) << c.name();
  kernels::attention_cpu_on(p, target);
  const Tensor qr = rounded_query(in.q.view, p.scale);
  const Tensor kf = dequantized(in.k), vf = dequantized(in.v);
  AttentionOptions ro = c.opt;
  ro.int8_scores = false;
  ro.scale = 1.f;
  kernels::attention_reference(
      kernels::make_problem(qr.view, kf.view, vf.view, ref.view, ref.lse_view(), ro));
  const Int8Errors e = compare_outputs(fast, ref, c);
  const std::string where = c.name() + " target " + target.name + " threads " +
                            std::to_string(threads) + (spread ? " spread scales" : "");
  EXPECT_FALSE(e.nan) << where;
  EXPECT_TRUE(e.guards_ok) << "wrote outside the output view: " << where;
  EXPECT_FALSE(e.inf_mismatch) << where;
  EXPECT_LE(e.out, kTolInt8Scores) << where;
  EXPECT_LE(e.lse, kTolInt8Scores) << where;
}

// A decode problem: at most 8 query rows per kv head (the scope of the mode).
Case random_int8_case(std::mt19937& rng) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Case c;
  c.kv_dtype = DType::q8_0;
  c.seed = rng();
  c.batch = pick(1, 3);
  const int groups[] = {1, 1, 2, 3, 4, 7, 8};
  const int g = groups[pick(0, 6)];
  c.n_head_kv = pick(1, 3);
  c.n_head = c.n_head_kv * g;
  c.n_q = pick(1, 8 / g);
  const int dims[] = {32, 64, 96, 128, 160, 256};
  c.head_dim = dims[pick(0, 5)];
  c.head_dim_v = pick(0, 3) == 0 ? dims[pick(0, 5)] : c.head_dim;
  c.n_kv = pick(0, 4) == 0 ? pick(1000, 3000) : pick(1, 200);
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

TEST(AttentionQ8Int8, RandomDecodeShapesMasksLayoutsTargets) {
  std::mt19937 rng(1808);
  for (int n = 0; n < cases(40); ++n) {
    const Case c = random_int8_case(rng);
    for (const auto* t : runnable_targets()) expect_int8_close(c, *t, 1 + n % 2, n % 3 == 0);
  }
}

TEST(AttentionQ8Int8, EveryRowCountHeadDimAndBlockScale) {
  // Rows per kv head 1..8, head_dim 32 (one block: on avx512 a step of one block only), 64 and
  // 128 (fixed at compile time), 96 and 160 (run time; on avx512 a pair of blocks then one),
  // block scales spread over 2^-4..2^4 so that a block's d applied to another's bytes, or d_q of
  // another block, would be far off; a tile boundary (32 keys) inside the cache.
  for (int g = 1; g <= 8; ++g) {
    for (const int64_t d : {32, 64, 96, 128, 160}) {
      Case c;
      c.kv_dtype = DType::q8_0;
      c.n_head_kv = 1 + g % 3, c.n_head = c.n_head_kv * g, c.n_q = 1;
      c.head_dim = c.head_dim_v = d;
      c.n_kv = 75 + g;
      c.value_range = 2.f;
      c.seed = static_cast<uint32_t>(g * 29 + d);
      for (const auto* t : runnable_targets()) expect_int8_close(c, *t, 1 + g % 2, true);
    }
  }
}

TEST(AttentionQ8Int8, StreamingRangeAndTilesBothUseIntegerScores) {
  // One query row per kv head takes decode_range for caches over 16 MiB, decode_tile below;
  // QKV_DECODE forces either (read per call).
  Case c;
  c.kv_dtype = DType::q8_0;
  c.n_head = c.n_head_kv = 6, c.n_q = 1, c.head_dim = c.head_dim_v = 64, c.n_kv = 2500;
  c.seed = 77;
  for (const char* mode : {"range", "tiles"}) {
    setenv("QKV_DECODE", mode, 1);
    for (const auto* t : runnable_targets()) expect_int8_close(c, *t, 2, true);
  }
  // Each key's integer score is formed in its own lane, whichever keys share its vector, and both
  // paths take the same tiles, softmax and P · V order: on every target the two give equal bits.
  attach_options(c);
  c.opt.int8_scores = true;
  c.n_kv = 1000 + 7;  // a tail of keys short of a vector
  const Inputs in = make_inputs(c);
  for (const auto* t : runnable_targets()) {
    std::vector<float> out[2], lse[2];
    for (int m = 0; m < 2; ++m) {
      setenv("QKV_DECODE", m == 0 ? "range" : "tiles", 1);
      Output o({1, 1, c.n_head, c.head_dim_v}, Layout::bshd);
      AttentionOptions fo = c.opt;
      fo.n_threads = 2;
      kernels::attention_cpu_on(
          kernels::make_problem(in.q.view, in.k.view, in.v.view, o.view, o.lse_view(), fo), *t);
      out[m] = o.buf;
      lse[m] = o.lse;
    }
    EXPECT_EQ(out[0], out[1]) << t->name;
    EXPECT_EQ(lse[0], lse[1]) << t->name;
  }
  unsetenv("QKV_DECODE");
}

TEST(AttentionQ8Int8, LongerQueryBlocksAndOtherDtypesKeepFp32Scores) {
  // Prefill (more than 8 rows per kv head) and non-q8_0 caches ignore the option: equal bits.
  for (const DType dt : {DType::q8_0, DType::f16}) {
    for (const int64_t n_q : {1, 30}) {
      Case c;
      c.kv_dtype = dt;
      c.n_q = n_q, c.n_kv = 100, c.n_head = 4, c.n_head_kv = 2, c.head_dim = c.head_dim_v = 64;
      c.opt.causal = true;
      const Inputs in = make_inputs(c);
      if (dt == DType::q8_0 && n_q == 1) continue;  // the mode applies there
      Output a({1, n_q, 4, 64}, Layout::bshd), b({1, n_q, 4, 64}, Layout::bshd);
      AttentionOptions o = c.opt;
      attention(in.q.view, in.k.view, in.v.view, a.view, a.lse_view(), o);
      o.int8_scores = true;
      attention(in.q.view, in.k.view, in.v.view, b.view, b.lse_view(), o);
      EXPECT_EQ(a.buf, b.buf) << dtype_name(dt) << " n_q " << n_q;
      EXPECT_EQ(a.lse, b.lse) << dtype_name(dt) << " n_q " << n_q;
    }
  }
}

TEST(AttentionQ8Int8, ReferenceBackendComputesTheMode) {
  // Backend::reference with int8_scores against the twin (its own path: the integer block sums
  // from the q8_0 bytes): the same doubles up to the twin's fp32 d_q * q.
  Case c;
  c.kv_dtype = DType::q8_0;
  c.n_q = 2, c.n_kv = 60, c.n_head = 8, c.n_head_kv = 2, c.head_dim = c.head_dim_v = 96;
  c.opt.causal = true;
  const Inputs in = make_inputs(c);
  Output a({1, 2, 8, 96}, Layout::bshd), b({1, 2, 8, 96}, Layout::bshd);
  AttentionOptions o = c.opt;
  o.backend = Backend::reference;
  o.int8_scores = true;
  attention(in.q.view, in.k.view, in.v.view, a.view, a.lse_view(), o);
  const Tensor qr = rounded_query(in.q.view, 1.f / std::sqrt(96.f));
  const Tensor kf = dequantized(in.k), vf = dequantized(in.v);
  AttentionOptions ro = c.opt;
  ro.backend = Backend::reference;
  ro.scale = 1.f;
  attention(qr.view, kf.view, vf.view, b.view, b.lse_view(), ro);
  const Int8Errors e = compare_outputs(a, b, c);
  EXPECT_LE(e.out, 1e-6);
  EXPECT_LE(e.lse, 1e-6);
}

TEST(AttentionQ8Int8, ProbsAreThoseTheDecodeUsed) {
  // attention_probs with the mode's options recomputes the integer scores: with the decode's lse
  // its rows are the twin's probabilities and sum to 1 (they would not with fp32 scores: the lse
  // would belong to other scores).
  for (int n = 0; n < 4; ++n) {
    Case c;
    c.kv_dtype = DType::q8_0;
    c.n_q = 1 + n % 2, c.n_kv = 150 + 7 * n, c.n_head = 4, c.n_head_kv = n < 2 ? 4 : 1;
    c.head_dim = c.head_dim_v = n == 3 ? 96 : 64;
    c.value_range = 3.f;
    c.opt.causal = true;
    if (n == 2) c.alibi = {0.5f, 0.25f, 0.1f, 0.05f};  // element-wise rules
    c.seed = static_cast<uint32_t>(n + 90);
    attach_options(c);
    c.opt.int8_scores = true;
    const Inputs in = make_inputs(c);
    Output o({1, c.n_q, 4, c.head_dim_v}, Layout::bshd);
    attention(in.q.view, in.k.view, in.v.view, o.view, o.lse_view(), c.opt);
    const std::vector<int64_t> rows{0, c.n_q - 1};
    const int64_t h = n % 4;
    std::vector<float> probs(rows.size() * static_cast<size_t>(c.n_kv)),
        want(rows.size() * static_cast<size_t>(c.n_kv));
    attention_probs(in.q.view, in.k.view, o.lse_view(), 0, h, rows, probs.data(), c.opt);
    const Tensor qr = rounded_query(in.q.view, 1.f / std::sqrt(static_cast<float>(c.head_dim)));
    const Tensor kf = dequantized(in.k);
    AttentionOptions ro = c.opt;
    ro.backend = Backend::reference;
    ro.int8_scores = false;
    ro.scale = 1.f;
    attention_probs(qr.view, kf.view, o.lse_view(), 0, h, rows, want.data(), ro);
    for (size_t r = 0; r < rows.size(); ++r) {
      double sum = 0;
      for (int64_t j = 0; j < c.n_kv; ++j) {
        const size_t x = r * static_cast<size_t>(c.n_kv) + static_cast<size_t>(j);
        EXPECT_NEAR(probs[x], want[x], 2e-6) << n << " " << j;
        sum += probs[x];
      }
      EXPECT_NEAR(sum, 1.0, 1e-5) << n;
    }
  }
}

TEST(AttentionQ8Int8, ErrorAgainstFp32ScoresStaysWithinTheRoundingBound) {
  // Against the exact mode (fp32 q): rounding q moves each scaled value by at most d_q / 2, so a
  // score by at most sum_blocks d_q / 2 * sum |k| (k dequantized), and the lse by at most the
  // largest of those. Records the error seen, for docs/PERFORMANCE.md.
  Case c;
  c.kv_dtype = DType::q8_0;
  c.n_q = 1, c.n_kv = 500, c.n_head = 8, c.n_head_kv = 8, c.head_dim = c.head_dim_v = 64;
  c.value_range = 2.f;
  const Inputs in = make_inputs(c);
  const Tensor kf = dequantized(in.k);
  Output exact({1, 1, 8, 64}, Layout::bshd), int8({1, 1, 8, 64}, Layout::bshd);
  AttentionOptions o;
  attention(in.q.view, in.k.view, in.v.view, exact.view, exact.lse_view(), o);
  o.int8_scores = true;
  attention(in.q.view, in.k.view, in.v.view, int8.view, int8.lse_view(), o);
  const float scale = 1.f / 8.f;
  double worst_lse = 0, worst_out = 0;
  for (int64_t h = 0; h < 8; ++h) {
    double bound = 0;
    for (int64_t j = 0; j < c.n_kv; ++j) {
      double bj = 0;
      for (int64_t c0 = 0; c0 < 64; c0 += 32) {
        double amax = 0, ksum = 0;
        for (int64_t x = c0; x < c0 + 32; ++x) {
          amax = std::max<double>(amax, std::fabs(view_element(in.q.view, 0, 0, h, x) * scale));
          ksum += std::fabs(view_element(kf.view, 0, j, h, x));
        }
        bj += amax / 127 / 2 * ksum;
      }
      bound = std::max(bound, bj);
    }
    const double dl = std::fabs(exact.lse_view()[h] - int8.lse_view()[h]);
    EXPECT_LE(dl, bound + 1e-5) << h;
    worst_lse = std::max(worst_lse, dl);
    for (int64_t x = 0; x < 64; ++x)
      worst_out =
          std::max<double>(worst_out, std::fabs(exact.at(0, 0, h, x) - int8.at(0, 0, h, x)));
  }
  RecordProperty("max_lse_diff", std::to_string(worst_lse));
  RecordProperty("max_out_diff", std::to_string(worst_out));
  std::printf("int8 scores vs fp32: max |lse diff| %.3g, max |out diff| %.3g\n", worst_lse,
              worst_out);
  EXPECT_GT(worst_lse, 0.0);  // the mode is on: q was rounded
}

TEST(AttentionQ8Int8, RefusedWithTheBf16Mode) {
  Case c;
  c.kv_dtype = DType::q8_0;
  c.n_q = 1, c.n_kv = 8, c.head_dim = c.head_dim_v = 32;
  const Inputs in = make_inputs(c);
  Output o({1, 1, 2, 32}, Layout::bshd);
  AttentionOptions opt;
  opt.int8_scores = true;
  opt.precision = Precision::bf16;
  try {
    attention(in.q.view, in.k.view, in.v.view, o.view, {}, opt);
    ADD_FAILURE() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("int8_scores"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qkv::test
