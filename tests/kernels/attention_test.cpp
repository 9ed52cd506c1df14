// Parity of the fast CPU attention with the reference over shapes, masks, dtypes, layouts,
// targets and thread counts.
//
// Tolerances (max |out - ref| / (1 + |ref|), same for lse):
//   f32 mode, f32/f16/bf16 K/V: 3e-5. The reference reads the same stored K/V values exactly, so
//     the only difference is fp32 accumulation (dot products of length head_dim <= 256 and
//     softmax sums over <= 3000 keys, relative error ~1e-6) and the exp2 polynomial (2e-7).
//   bf16 mode: 3e-2. q, k, the probabilities and v are rounded to bf16 (8 significant bits,
//     relative error 2^-9 each); the scores are O(1), so errors of a few 1e-3 per score and per
//     product add up to ~1e-2 in the output.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>

#include "attention_harness.h"
#include "common/test_scale.h"
#include "core/cpu_features.h"
#include "qkv/error.h"

namespace qkv::test {
namespace {

constexpr double kTolF32 = 3e-5;
constexpr double kTolBf16Mode = 3e-2;

void expect_close(const Case& c, const kernels::cpu::TargetOps& t, int threads, double tol) {
  const Result r = run_against_reference(c, t, threads);
  const std::string where = c.name() + " target " + t.name + " threads " + std::to_string(threads);
  EXPECT_FALSE(r.has_nan) << where;
  EXPECT_TRUE(r.guards_ok) << "wrote outside the output view: " << where;
  EXPECT_FALSE(r.lse_inf_mismatch) << where;
  EXPECT_LE(r.max_out_err, tol) << where;
  EXPECT_LE(r.max_lse_err, tol) << where;
}

// A random case: sizes from small odd ones to a few tiles, every option drawn independently so
// that combinations get exercised.
Case random_case(std::mt19937& rng, bool options) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Case c;
  c.seed = rng();
  c.batch = pick(1, 3);
  const int groups[] = {1, 1, 2, 3, 4, 8};
  c.n_head_kv = pick(1, 3);
  c.n_head = c.n_head_kv * groups[pick(0, 5)];
  const int dims[] = {1, 3, 8, 16, 17, 32, 40, 64, 80, 96, 128, 256};
  c.head_dim = dims[pick(0, 11)];
  c.head_dim_v = pick(0, 3) == 0 ? dims[pick(0, 11)] : c.head_dim;
  c.n_kv = pick(1, 200);
  c.n_q = pick(0, 2) == 0 ? c.n_kv : pick(1, 150);
  if (pick(0, 3) == 0) c.n_q = pick(1, 4);  // decode-like
  const DType dts[] = {DType::f32, DType::f16, DType::bf16};
  c.kv_dtype = dts[pick(0, 2)];
  c.layout = static_cast<Layout>(pick(0, 2));
  if (!options) return c;
  c.opt.causal = pick(0, 1);
  if (pick(0, 2) == 0) {
    for (int b = 0; b < c.batch; ++b) c.kv_lengths.push_back(pick(0, static_cast<int>(c.n_kv)));
  }
  if (pick(0, 4) == 0) {
    // Negative offsets too: queries before the first key (a later key block of ring attention).
    for (int b = 0; b < c.batch; ++b) {
      c.q_offsets.push_back(pick(-static_cast<int>(c.n_q), static_cast<int>(c.n_kv)));
    }
  }
  if (pick(0, 2) == 0) c.opt.window_left = pick(0, 40);
  if (pick(0, 3) == 0) c.opt.window_right = pick(0, 40);
  const int mask = pick(0, 5);
  if (mask == 0) {
    c.boolean.resize(static_cast<size_t>(c.n_q * c.n_kv));
    for (auto& m : c.boolean) m = pick(0, 3) != 0;
  } else if (mask == 1) {
    c.additive.resize(static_cast<size_t>(c.n_q * c.n_kv));
    for (auto& m : c.additive)
      m = pick(0, 5) == 0 ? -INFINITY : std::uniform_real_distribution<float>(-2, 2)(rng);
  }
  if (pick(0, 3) == 0) {
    for (int h = 0; h < c.n_head; ++h) c.alibi.push_back(std::pow(2.f, -8.f * (h + 1) / c.n_head));
  }
  if (pick(0, 4) == 0) c.opt.softcap = 5.f;
  if (pick(0, 3) == 0) c.opt.scale = 0.7f;
  return c;
}

TEST(AttentionCpu, RandomShapesWithoutMasks) {
  std::mt19937 rng(101);
  for (int n = 0; n < cases(60); ++n) {
    const Case c = random_case(rng, false);
    for (const auto* t : runnable_targets()) expect_close(c, *t, 2, kTolF32);
  }
}

TEST(AttentionCpu, RandomShapesWithEveryMaskCombination) {
  std::mt19937 rng(202);
  for (int n = 0; n < cases(150); ++n) {
    const Case c = random_case(rng, true);
    for (const auto* t : runnable_targets()) expect_close(c, *t, 1 + n % 2, kTolF32);
  }
}

TEST(AttentionCpu, EachMaskAlone) {
  for (int kind = 0; kind < 8; ++kind) {
    Case c;
    c.batch = 2, c.n_q = 70, c.n_kv = 130, c.n_head = 4, c.n_head_kv = 2, c.head_dim = 32;
    c.head_dim_v = 32;
    switch (kind) {
      case 0:
        c.opt.causal = true;
        break;
      case 1:
        c.kv_lengths = {100, 3};
        break;
      case 2:
        c.opt.window_left = 16;
        break;
      case 3:
        c.opt.window_left = 8, c.opt.window_right = 8;
        break;
      case 4:
        c.boolean.assign(static_cast<size_t>(c.n_q * c.n_kv), 1);
        for (size_t i = 0; i < c.boolean.size(); i += 3) c.boolean[i] = 0;
        break;
      case 5:
        c.additive.assign(static_cast<size_t>(c.n_q * c.n_kv), 0.5f);
        for (size_t i = 0; i < c.additive.size(); i += 7) c.additive[i] = -INFINITY;
        break;
      case 6:
        c.alibi = {0.5f, 0.25f, 0.125f, 0.0625f};
        break;
      case 7:
        c.opt.softcap = 2.f, c.value_range = 3.f;
        break;
    }
    for (const auto* t : runnable_targets()) expect_close(c, *t, 2, kTolF32);
  }
}

TEST(AttentionCpu, LongCausalPrefillAcrossManyTiles) {
  Case c;
  c.batch = 1, c.n_q = 700, c.n_kv = 700, c.n_head = 3, c.n_head_kv = 1, c.head_dim = 64;
  c.head_dim_v = 64;
  c.opt.causal = true;
  c.kv_dtype = DType::f16;
  for (const auto* t : runnable_targets()) expect_close(c, *t, 2, kTolF32);
}

// Several query blocks and GQA heads per kv head: the K/V tiles are packed once per kv head and
// shared, in groups of (sequence, kv head) pairs when they exceed the budget (QKV_PACK_MIB=0: one
// pair per group). Keys past a sequence's kv_length are never multiplied, even holding NaN, and a
// window makes the first tile of a row block start mid-tile.
TEST(AttentionCpu, SharedTilesInGroupsAndPaddedKeysNeverUsed) {
  Case c;
  c.batch = 2, c.n_q = 300, c.n_kv = 300, c.n_head = 4, c.n_head_kv = 2, c.head_dim = 32;
  c.head_dim_v = 24;
  c.opt.causal = true;
  c.opt.window_left = 70;
  c.kv_lengths = {300, 173};
  attach_options(c);
  const Inputs clean = make_inputs(c);
  Inputs bad = clean;
  bad.k.view.data = bad.k.f32.data();
  bad.v.view.data = bad.v.f32.data();
  for (int64_t j = c.kv_lengths[1]; j < c.n_kv; ++j) {
    for (int64_t h = 0; h < c.n_head_kv; ++h) {
      for (int64_t x = 0; x < c.head_dim; ++x)
        bad.k.f32[static_cast<size_t>(((c.n_kv + j) * c.n_head_kv + h) * c.head_dim + x)] = NAN;
      for (int64_t x = 0; x < c.head_dim_v; ++x)
        bad.v.f32[static_cast<size_t>(((c.n_kv + j) * c.n_head_kv + h) * c.head_dim_v + x)] = NAN;
    }
  }
  const std::array<int64_t, 4> oshape{c.batch, c.n_q, c.n_head, c.head_dim_v};
  Output ref(oshape, Layout::bshd);
  kernels::attention_reference(kernels::make_problem(clean.q.view, clean.k.view, clean.v.view,
                                                     ref.view, ref.lse_view(), c.opt));
  // The bf16 mode shares tiles too where it has pair layouts (AMX, AVX512_BF16 dot products).
  for (const auto& [precision, tol] :
       {std::pair{Precision::f32, kTolF32}, std::pair{Precision::bf16, kTolBf16Mode}}) {
    for (const char* budget : {"", "0"}) {
      if (*budget) {
        setenv("QKV_PACK_MIB", budget, 1);
      } else {
        unsetenv("QKV_PACK_MIB");
      }
      for (const auto* t : runnable_targets()) {
        for (int threads : {1, 2}) {
          Output fast(oshape, Layout::bshd);
          AttentionOptions o = c.opt;
          o.n_threads = threads;
          o.precision = precision;
          kernels::attention_cpu_on(kernels::make_problem(bad.q.view, bad.k.view, bad.v.view,
                                                          fast.view, fast.lse_view(), o),
                                    *t);
          double err = 0;
          bool nan = false;
          for (size_t i = 0; i < fast.buf.size(); ++i) {
            nan = nan || std::isnan(fast.buf[i]);
            err = std::max(
                err, std::fabs(double(fast.buf[i]) - ref.buf[i]) / (1 + std::fabs(ref.buf[i])));
          }
          for (size_t i = 0; i < fast.lse.size(); ++i) {
            nan = nan || std::isnan(fast.lse[i]);
            if (std::isfinite(ref.lse[i])) {
              err = std::max(
                  err, std::fabs(double(fast.lse[i]) - ref.lse[i]) / (1 + std::fabs(ref.lse[i])));
            }
          }
          const std::string where = std::string("budget '") + budget + "' target " + t->name +
                                    " threads " + std::to_string(threads) +
                                    (precision == Precision::bf16 ? " bf16 mode" : "");
          EXPECT_FALSE(nan) << where;
          EXPECT_LE(err, tol) << where;
        }
      }
    }
  }
  unsetenv("QKV_PACK_MIB");
}

TEST(AttentionCpu, DecodeAgainstLongCacheSplitsAndMerges) {
  // One query against 3000 keys of 4 kv heads with head_dim 256: 4-8 KiB of K and V per key, so
  // the 2 MiB decode chunks cut the keys into 6-12 ranges that are merged by LSE.
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    Case c;
    c.batch = 2, c.n_q = 1, c.n_kv = 3000, c.n_head = 16, c.n_head_kv = 4, c.head_dim = 256;
    c.head_dim_v = 256;
    c.kv_dtype = dt;
    c.kv_lengths = {2999, 1234};
    c.opt.causal = true;
    for (const auto* t : runnable_targets()) {
      expect_close(c, *t, 1, kTolF32);
      expect_close(c, *t, 2, kTolF32);
    }
  }
}

TEST(AttentionCpu, DecodeEveryRowCountDtypeAndMask) {
  // The decode path (<= 8 query rows per kv head) for every row count 1..8, made of GQA groups and
  // a few queries; head sizes that are whole vectors for every target (the vector decode kernels)
  // and odd ones (the per-key path); K rows batched across key and head boundaries (1 to 3 kv
  // heads, key counts that end mid-batch and mid-tile).
  std::mt19937 rng(404);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const int dims[] = {16, 32, 64, 128, 24, 40};
  for (int rows = 1; rows <= 8; ++rows) {
    for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
      Case c;
      c.seed = rng();
      c.n_q = rows % 3 == 0 ? 3 : rows % 2 == 0 ? 2 : 1;
      if (rows % c.n_q != 0) c.n_q = 1;
      c.batch = pick(1, 2);
      c.n_head_kv = pick(1, 3);
      c.n_head = c.n_head_kv * (rows / static_cast<int>(c.n_q));
      c.head_dim = dims[pick(0, 5)];
      c.head_dim_v = pick(0, 3) == 0 ? dims[pick(0, 5)] : c.head_dim;
      c.n_kv = pick(1, 3) == 1 ? pick(1, 40) : pick(100, 700);
      c.kv_dtype = dt;
      c.layout = static_cast<Layout>(pick(0, 1));  // unit-stride rows: the direct path
      const int mask = pick(0, 4);
      if (mask == 1) c.opt.causal = true;
      if (mask == 2) {
        for (int b = 0; b < c.batch; ++b) c.kv_lengths.push_back(pick(0, static_cast<int>(c.n_kv)));
      }
      if (mask == 3) c.opt.window_left = pick(0, 50), c.opt.causal = true;
      if (mask == 4) {
        c.boolean.resize(static_cast<size_t>(c.n_q * c.n_kv));
        for (auto& m : c.boolean) m = pick(0, 3) != 0;
        for (int h = 0; h < c.n_head; ++h) c.alibi.push_back(0.1f * (h + 1));
        c.opt.softcap = 4.f;
      }
      for (const auto* t : runnable_targets()) expect_close(c, *t, 1 + rows % 2, kTolF32);
    }
  }
}

TEST(AttentionCpu, DecodeHeadDimsFixedAtCompileTime) {
  // head_dim 64 and 128 (with head_dim_v equal) run decode kernels whose dimension is a template
  // argument for 1, 2, 4 and 8 rows per kv head, one per dtype; every row count 1..8 is run here
  // (the others take the run-time-dimension kernel), with key counts that end mid-batch and
  // mid-tile, against the reference. head_dim_v != head_dim takes the run-time kernel too.
  std::mt19937 rng(405);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int dim : {64, 128}) {
    for (int rows = 1; rows <= 8; ++rows) {
      for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
        Case c;
        c.seed = rng();
        c.n_q = 1;
        c.n_head_kv = pick(1, 3);
        c.n_head = c.n_head_kv * rows;
        c.head_dim = dim;
        c.head_dim_v = rows == 3 ? 192 - dim : dim;
        c.n_kv = pick(1, 2) == 1 ? pick(1, 37) : pick(100, 300);
        c.kv_dtype = dt;
        if (rows % 2 == 0) c.opt.causal = true, c.kv_lengths = {pick(0, static_cast<int>(c.n_kv))};
        for (const auto* t : runnable_targets()) expect_close(c, *t, 1 + rows % 2, kTolF32);
      }
    }
  }
}

TEST(AttentionCpu, DecodeRangeGivesTheBitsOfDecodeTiles) {
  // An MHA decode (one query row per kv head) of a cache larger than kDecodeRangeBytes scores the
  // next tile of keys in the same pass as P · V of this one (decode_range) instead of tile by tile
  // (decode_tile), with the same products in the same order: the outputs and LSE must be equal
  // bit for bit (QKV_DECODE=range|tiles forces either path), on every target, for every dtype,
  // head sizes with run-time and compile-time dimensions, key counts that end mid-batch and
  // mid-tile, the interval masks and the element-wise rules, 1 and 2 threads (split keys).
  std::mt19937 rng(406);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const int dims[] = {32, 64, 128, 96};
  for (int n = 0; n < 24; ++n) {
    Case c;
    c.seed = rng();
    c.n_q = 1;
    c.batch = pick(1, 2);
    c.n_head_kv = pick(1, 5);
    c.n_head = c.n_head_kv;
    c.head_dim = dims[pick(0, 3)];
    c.head_dim_v = pick(0, 3) == 0 ? dims[pick(0, 3)] : c.head_dim;
    c.n_kv = n < 4 ? pick(1, 70) : pick(100, 1500);
    const DType dts[] = {DType::f32, DType::f16, DType::bf16, DType::q8_0};
    c.kv_dtype = dts[n % 4];
    const int mask = pick(0, 3);
    if (mask == 1) {
      c.opt.causal = true;
      for (int b = 0; b < c.batch; ++b) c.kv_lengths.push_back(pick(0, static_cast<int>(c.n_kv)));
    }
    if (mask == 2) c.opt.window_left = pick(0, 300), c.opt.causal = true;
    if (mask == 3) {
      c.boolean.resize(static_cast<size_t>(c.n_kv));
      for (auto& m : c.boolean) m = pick(0, 3) != 0;
      for (int h = 0; h < c.n_head; ++h) c.alibi.push_back(0.1f * (h + 1));
      c.opt.softcap = 4.f;
    }
    attach_options(c);
    const Inputs in = make_inputs(c);
    const std::array<int64_t, 4> oshape{c.batch, c.n_q, c.n_head, c.head_dim_v};
    for (const auto* t : runnable_targets()) {
      for (int threads : {1, 2}) {
        AttentionOptions o = c.opt;
        o.n_threads = threads;
        Output tiles(oshape, Layout::bshd), range(oshape, Layout::bshd);
        setenv("QKV_DECODE", "tiles", 1);
        kernels::attention_cpu_on(
            kernels::make_problem(in.q.view, in.k.view, in.v.view, tiles.view, tiles.lse_view(), o),
            *t);
        setenv("QKV_DECODE", "range", 1);
        kernels::attention_cpu_on(
            kernels::make_problem(in.q.view, in.k.view, in.v.view, range.view, range.lse_view(), o),
            *t);
        unsetenv("QKV_DECODE");
        const std::string where =
            c.name() + " target " + t->name + " threads " + std::to_string(threads);
        ASSERT_EQ(tiles.buf.size(), range.buf.size());
        EXPECT_EQ(std::memcmp(tiles.buf.data(), range.buf.data(), tiles.buf.size() * 4), 0)
            << where;
        EXPECT_EQ(std::memcmp(tiles.lse.data(), range.lse.data(), tiles.lse.size() * 4), 0)
            << where;
        EXPECT_TRUE(range.guards_intact()) << where;
      }
    }
  }
}

TEST(AttentionCpu, OneAndTwoThreadsAgree) {
  std::mt19937 rng(303);
  for (int n = 0; n < cases(10); ++n) {
    Case c = random_case(rng, true);
    c.n_kv = 1500, c.n_q = n % 2 ? 1 : 90;
    c.boolean.clear(), c.additive.clear(), c.q_offsets.clear(), c.kv_lengths.clear();
    attach_options(c);
    const Inputs in = make_inputs(c);
    const std::array<int64_t, 4> shape{c.batch, c.n_q, c.n_head, c.head_dim_v};
    Output o1(shape, Layout::bshd), o2(shape, Layout::bshd);
    AttentionOptions a = c.opt, b = c.opt;
    a.n_threads = 1, b.n_threads = 2;
    attention(in.q.view, in.k.view, in.v.view, o1.view, o1.lse_view(), a);
    attention(in.q.view, in.k.view, in.v.view, o2.view, o2.lse_view(), b);
    double err = 0;
    for (size_t i = 0; i < o1.buf.size(); ++i)
      err = std::max(err, double(std::fabs(o1.buf[i] - o2.buf[i])));
    EXPECT_LE(err, 1e-5) << c.name();
  }
}

TEST(AttentionCpu, ExtremeScoresStayFinite) {
  // Scores of +-1e4: the softmax is one-hot up to ties; fp32 scores of that size carry an
  // absolute rounding error of ~1e-3, hence the looser bound.
  Case c;
  c.n_q = 33, c.n_kv = 97, c.n_head = 2, c.n_head_kv = 1, c.head_dim = 16, c.head_dim_v = 16;
  c.value_range = 40.f;  // |q.k| up to ~1e4 after scaling
  c.opt.causal = true;
  for (const auto* t : runnable_targets()) expect_close(c, *t, 2, 1e-3);
}

TEST(AttentionCpu, FullyMaskedRowsGiveZerosAndMinusInfinity) {
  Case c;
  c.batch = 2, c.n_q = 5, c.n_kv = 9, c.n_head = 2, c.n_head_kv = 2, c.head_dim = 8,
  c.head_dim_v = 8;
  c.kv_lengths = {0, 9};  // sequence 0 has no keys at all
  c.boolean.assign(static_cast<size_t>(c.n_q * c.n_kv), 1);
  for (int j = 0; j < 9; ++j)
    c.boolean[static_cast<size_t>(2 * 9 + j)] = 0;  // query 2 sees nothing
  attach_options(c);
  const Inputs in = make_inputs(c);
  Output o({c.batch, c.n_q, c.n_head, c.head_dim_v}, Layout::bshd);
  attention(in.q.view, in.k.view, in.v.view, o.view, o.lse_view(), c.opt);
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t i = 0; i < 5; ++i) {
      EXPECT_EQ(o.lse_view()[(0 * 2 + h) * 5 + i], -INFINITY);
      for (int64_t d = 0; d < 8; ++d) EXPECT_EQ(o.at(0, i, h, d), 0.f);
    }
    EXPECT_EQ(o.lse_view()[(1 * 2 + h) * 5 + 2], -INFINITY);
    for (int64_t d = 0; d < 8; ++d) EXPECT_EQ(o.at(1, 2, h, d), 0.f);
    EXPECT_TRUE(std::isfinite(o.lse_view()[(1 * 2 + h) * 5 + 1]));
  }
}

TEST(AttentionCpu, Bf16ModeErrorIsBounded) {
  std::mt19937 rng(404);
  for (int n = 0; n < cases(20); ++n) {
    Case c = random_case(rng, false);
    c.opt.precision = Precision::bf16;
    for (const auto* t : runnable_targets()) expect_close(c, *t, 2, kTolBf16Mode);
  }
}

// The bf16 mode on head dimensions that are multiples of 32, which the AMX path (CPUs with
// AMX-BF16) takes in blocks of 16 rows, 16 dimension pairs and 16 key pairs: row counts and key
// counts that end mid-block, partial key tiles, masks, GQA, head_dim_v != head_dim. Where the CPU
// has no AMX this runs the dot-product or rounding path, with the same bound.
TEST(AttentionCpu, Bf16ModeWholeTileDimensions) {
  std::mt19937 rng(405);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const int dims[] = {32, 64, 96, 128, 256};
  const int dims_v[] = {16, 48, 64, 128};
  for (int n = 0; n < cases(16); ++n) {
    Case c = random_case(rng, true);
    c.head_dim = dims[n % 5];
    c.head_dim_v = n % 3 == 0 ? dims_v[pick(0, 3)] : c.head_dim;
    c.n_q = pick(0, 1) == 0 ? pick(1, 40) : pick(120, 150);  // one or two 128-row items
    c.n_kv = pick(1, 2) == 1 ? c.n_q : pick(1, 300);
    c.boolean.clear();
    c.additive.clear();
    c.kv_lengths.clear();
    c.q_offsets.clear();
    if (n % 4 == 1) {
      for (int b = 0; b < c.batch; ++b) c.kv_lengths.push_back(pick(0, static_cast<int>(c.n_kv)));
    }
    c.opt.precision = Precision::bf16;
    for (const auto* t : runnable_targets()) expect_close(c, *t, 1 + n % 2, kTolBf16Mode);
  }
}

// The bf16 mode's arithmetic follows the CPU: AMX only with AMX-BF16 and head_dim a multiple of
// 32, dot products only with AVX512_BF16, and only on the avx512 target.
TEST(AttentionApi, Bf16PathFollowsTheCpu) {
  const auto& f = core::cpu_features();
  for (int64_t d : {16, 32, 48, 64, 128, 256}) {
    const std::string_view path = attention_bf16_path(d);
    EXPECT_TRUE(path == "amx" || path == "avx512_bf16" || path == "rounding") << path;
    if (attention_cpu_target() != "avx512" || !f.avx512_bf16) {
      EXPECT_EQ(path, "rounding") << d;
    }
    if (d % 32 != 0 || !f.amx_bf16) {
      EXPECT_NE(path, "amx") << d;
    }
  }
}

TEST(AttentionCpu, ReferenceBackendThroughPublicApi) {
  Case c;
  c.opt.causal = true;
  attach_options(c);
  const Inputs in = make_inputs(c);
  Output a({c.batch, c.n_q, c.n_head, c.head_dim_v}, Layout::bshd);
  Output b({c.batch, c.n_q, c.n_head, c.head_dim_v}, Layout::bshd);
  AttentionOptions ro = c.opt;
  ro.backend = Backend::reference;
  attention(in.q.view, in.k.view, in.v.view, a.view, a.lse_view(), ro);
  attention(in.q.view, in.k.view, in.v.view, b.view, b.lse_view(), c.opt);
  for (size_t i = 0; i < a.buf.size(); ++i) EXPECT_NEAR(a.buf[i], b.buf[i], 3e-5);
  // Query 0 of a causal square problem sees only key 0: its output is v[0].
  EXPECT_NEAR(a.at(0, 0, 0, 0), view_element(in.v.view, 0, 0, 0, 0), 1e-6);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "";
}

TEST(AttentionApi, InvalidArgumentsNameTheSizes) {
  std::vector<float> q(2 * 3 * 4 * 8), k(2 * 5 * 3 * 8), v(2 * 5 * 3 * 8), out(2 * 3 * 4 * 8);
  auto qv = View4::dense(q.data(), DType::f32, {2, 3, 4, 8});
  auto kv = View4::dense(k.data(), DType::f32, {2, 5, 3, 8});
  auto vv = View4::dense(v.data(), DType::f32, {2, 5, 3, 8});
  auto ov = MutView4::dense(out.data(), {2, 3, 4, 8});
  std::string e = error_of([&] { attention(qv, kv, vv, ov, {}); });
  EXPECT_NE(e.find("n_head = 4"), std::string::npos) << e;
  EXPECT_NE(e.find("n_head_kv = 3"), std::string::npos) << e;

  kv = View4::dense(k.data(), DType::f32, {2, 5, 2, 8});
  vv = View4::dense(v.data(), DType::f32, {2, 4, 2, 8});
  e = error_of([&] { attention(qv, kv, vv, ov, {}); });
  EXPECT_NE(e.find("n_kv = 5"), std::string::npos) << e;

  vv = View4::dense(v.data(), DType::f32, {2, 5, 2, 8});
  auto bad_out = MutView4::dense(out.data(), {2, 3, 4, 7});
  e = error_of([&] { attention(qv, kv, vv, bad_out, {}); });
  EXPECT_NE(e.find("out shape [2, 3, 4, 7] should be [2, 3, 4, 8]"), std::string::npos) << e;

  int32_t lens[2] = {5, 6};
  AttentionOptions o;
  o.kv_lengths = lens;
  e = error_of([&] { attention(qv, kv, vv, ov, {}, o); });
  EXPECT_NE(e.find("kv_lengths[1] = 6"), std::string::npos) << e;

  AttentionOptions m;
  m.mask = AttentionMask{MaskKind::boolean, lens, 3, 4, 4, 1};
  e = error_of([&] { attention(qv, kv, vv, ov, {}, m); });
  EXPECT_NE(e.find("mask is [3, 4]"), std::string::npos) << e;

  auto half_v = View4::dense(v.data(), DType::f16, {2, 5, 2, 8});
  e = error_of([&] { attention(qv, kv, half_v, ov, {}); });
  EXPECT_NE(e.find("same dtype"), std::string::npos) << e;
}

// The per-sequence and per-head arrays and the lse output are spans whose sizes the front end
// checks: a short one is an InvalidArgument naming both sizes, never a read or write past its end.
TEST(AttentionApi, RefusesShortArraysBySize) {
  std::vector<float> q(2 * 3 * 4 * 8), k(2 * 5 * 2 * 8), v(k), out(q), lse(2 * 4 * 3);
  const auto qv = View4::dense(q.data(), DType::f32, {2, 3, 4, 8});
  const auto kv = View4::dense(k.data(), DType::f32, {2, 5, 2, 8});
  const auto vv = View4::dense(v.data(), DType::f32, {2, 5, 2, 8});
  const auto ov = MutView4::dense(out.data(), {2, 3, 4, 8});
  const int32_t one[1] = {5};
  const float slopes[3] = {0.5f, 0.25f, 0.125f};
  auto expect = [&](const AttentionOptions& o, std::span<float> l, const std::string& want) {
    const std::string e = error_of([&] { attention(qv, kv, vv, ov, l, o); });
    EXPECT_NE(e.find(want), std::string::npos) << "got: " << e;
  };
  AttentionOptions o;
  o.kv_lengths = one;
  expect(o, {}, "kv_lengths has 1 values, expected batch = 2");
  o = {};
  o.q_offsets = one;
  expect(o, {}, "q_offsets has 1 values, expected batch = 2");
  o = {};
  o.alibi_slopes = slopes;
  expect(o, {}, "alibi_slopes has 3 values, expected n_head = 4");
  expect({}, std::span(lse).first(23), "lse has 23 values, expected batch * n_head * n_q");
  EXPECT_NO_THROW(attention(qv, kv, vv, ov, lse));

  // attention_probs reads the lse of one (batch, head): a short one is refused as well.
  const int64_t row = 0;
  std::vector<float> probs(5);
  const std::string e = error_of([&] {
    attention_probs(qv, kv, std::span<const float>(lse).first(4), 1, 3, {&row, 1}, probs.data());
  });
  EXPECT_NE(e.find("lse has 4 values, expected batch * n_head * n_q = 2 * 4 * 3 = 24"),
            std::string::npos)
      << e;
}

}  // namespace
}  // namespace qkv::test
