// attention_backward: the reference against central finite differences of a double-precision
// forward, the tiled CPU kernel against the reference on random shapes and layouts (every SIMD
// target, 1 and 2 threads, guard bytes around dq/dk/dv), and argument checking.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "attention_harness.h"
#include "common/test_scale.h"
#include "kernels/cpu/attention_backward_cpu.h"
#include "qkv/error.h"

namespace qkv::test {
namespace {

// L = Σ dout · out of the forward in attention.h, in double, for dense [batch, seq, head, dim]
// q, k, v given as doubles; p supplies the sizes and options (masks, soft-cap, ALiBi).
double forward_loss(const kernels::AttentionProblem& p, const std::vector<double>& q,
                    const std::vector<double>& k, const std::vector<double>& v,
                    const std::vector<float>& dout) {
  const int64_t H = p.n_head, HK = p.n_head_kv, d = p.head_dim, dv = p.head_dim_v;
  double loss = 0;
  std::vector<double> s(static_cast<size_t>(p.n_kv));
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < p.n_q; ++i) {
        int64_t lo, hi;
        p.key_range(b, i, &lo, &hi);
        double m = -INFINITY;
        for (int64_t j = lo; j < hi; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < d; ++c)
            dot += q[((b * p.n_q + i) * H + h) * d + c] *
                   k[((b * p.n_kv + j) * HK + h / p.group) * d + c];
          s[j] = kernels::transform_score(p, b, h, i, j, dot * p.scale);
          m = std::max(m, s[j]);
        }
        if (m == -INFINITY) continue;  // out = 0
        double l = 0;
        std::vector<double> o(static_cast<size_t>(dv), 0.0);
        for (int64_t j = lo; j < hi; ++j) {
          const double w = std::exp(s[j] - m);
          l += w;
          for (int64_t c = 0; c < dv; ++c)
            o[c] += w * v[((b * p.n_kv + j) * HK + h / p.group) * dv + c];
        }
        for (int64_t c = 0; c < dv; ++c)
          loss += dout[((b * p.n_q + i) * H + h) * dv + c] * o[c] / l;
      }
  return loss;
}

struct Grads {
  std::vector<float> dq, dk, dv;
};

// Runs the reference forward (out, lse) and then attention_backward with `opt` on dense tensors.
Grads backward_dense(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                     const std::vector<float>& v, const std::vector<float>& dout,
                     AttentionOptions opt) {
  const std::array<int64_t, 4> qs{c.batch, c.n_q, c.n_head, c.head_dim},
      ks{c.batch, c.n_kv, c.n_head_kv, c.head_dim}, vs{c.batch, c.n_kv, c.n_head_kv, c.head_dim_v},
      os{c.batch, c.n_q, c.n_head, c.head_dim_v};
  std::vector<float> out(static_cast<size_t>(c.batch * c.n_q * c.n_head * c.head_dim_v));
  std::vector<float> lse(static_cast<size_t>(c.batch * c.n_head * c.n_q));
  AttentionOptions fo = opt;
  fo.backend = Backend::reference;
  attention(View4::dense(q.data(), DType::f32, qs), View4::dense(k.data(), DType::f32, ks),
            View4::dense(v.data(), DType::f32, vs), MutView4::dense(out.data(), os), lse, fo);
  Grads g{std::vector<float>(q.size()), std::vector<float>(k.size()), std::vector<float>(v.size())};
  attention_backward(View4::dense(q.data(), DType::f32, qs), View4::dense(k.data(), DType::f32, ks),
                     View4::dense(v.data(), DType::f32, vs),
                     View4::dense(out.data(), DType::f32, os), lse,
                     View4::dense(dout.data(), DType::f32, os), MutView4::dense(g.dq.data(), qs),
                     MutView4::dense(g.dk.data(), ks), MutView4::dense(g.dv.data(), vs), opt);
  return g;
}

std::vector<float> random_floats(size_t n, std::mt19937& rng, float range) {
  std::uniform_real_distribution<float> u(-range, range);
  std::vector<float> x(n);
  for (auto& e : x) e = u(rng);
  return x;
}

// The mask kinds and their combinations, on small shapes (Case defaults: 1 x 7 x 7, 2 heads).
std::vector<Case> fd_cases() {
  std::vector<Case> cases;
  auto add = [&](const std::function<void(Case&)>& f) {
    Case c;
    c.batch = 2, c.n_q = 5, c.n_kv = 6, c.n_head = 2, c.n_head_kv = 2, c.head_dim = 3;
    c.head_dim_v = 4, c.value_range = 1.5f, c.seed = static_cast<uint32_t>(cases.size() + 1);
    f(c);
    cases.push_back(c);
  };
  std::mt19937 rng(11);
  add([](Case&) {});
  add([](Case& c) { c.opt.causal = true, c.n_q = c.n_kv = 6; });
  add([](Case& c) { c.opt.causal = true, c.n_q = 3; });  // bottom-right alignment
  add([](Case& c) { c.kv_lengths = {4, 0}; });           // sequence 1 fully masked
  add([](Case& c) { c.opt.window_left = 1, c.opt.window_right = 0; });
  add([](Case& c) { c.opt.window_left = 0, c.opt.window_right = 2, c.n_q = 6; });
  add([&](Case& c) {
    c.boolean.resize(static_cast<size_t>(c.n_q * c.n_kv));
    for (auto& x : c.boolean) x = rng() % 3 != 0;
    for (int64_t j = 0; j < c.n_kv; ++j) c.boolean[static_cast<size_t>(j)] = 0;  // row 0 masked
  });
  add([&](Case& c) {
    c.additive = random_floats(static_cast<size_t>(c.n_q * c.n_kv), rng, 2.f);
    c.additive[3] = -INFINITY;
  });
  add([](Case& c) { c.alibi = {0.5f, 0.25f}; });
  add([](Case& c) { c.opt.softcap = 1.5f, c.value_range = 3.f; });
  add([](Case& c) { c.n_head = 4, c.n_head_kv = 2; });  // GQA
  add([](Case& c) { c.n_head = 3, c.n_head_kv = 1; });  // MQA
  add([&](Case& c) {                                    // everything at once
    c.n_head = 4, c.n_head_kv = 1, c.opt.causal = true, c.kv_lengths = {5, 6};
    c.opt.window_left = 3, c.alibi = {0.5f, 0.1f, 0.3f, 1.f}, c.opt.softcap = 2.f;
    c.additive = random_floats(static_cast<size_t>(c.n_q * c.n_kv), rng, 1.f);
  });
  add([&](Case& c) {
    c.n_head = 4, c.n_head_kv = 2, c.q_offsets = {0, 2}, c.opt.causal = true;
    c.boolean.assign(static_cast<size_t>(c.n_q * c.n_kv), 1);
    c.boolean[7] = 0;
    c.opt.softcap = 1.f;
  });
  add([](Case& c) {  // queries before the first key (ring attention's later key blocks)
    c.q_offsets = {-2, -1}, c.opt.window_left = 4, c.opt.window_right = 3;
    c.alibi = {0.5f, 0.25f};
  });
  return cases;
}

// (a) The reference against central differences of the double forward:
//   dL/dx ≈ (L(x + h) - L(x - h)) / 2h, truncation error O(h²) ≈ 1e-8 with h = 1e-4.
// The reference reads the fp32 out and lse of the forward, whose rounding (~6e-8 relative) is
// what separates it from the double derivative: 2e-6 · (1 + |g|) leaves a wide margin.
TEST(AttentionBackward, ReferenceMatchesFiniteDifferences) {
  for (Case c : fd_cases()) {
    attach_options(c);
    SCOPED_TRACE(c.name());
    std::mt19937 rng(c.seed);
    const auto q = random_floats(static_cast<size_t>(c.batch * c.n_q * c.n_head * c.head_dim), rng,
                                 c.value_range);
    const auto k = random_floats(static_cast<size_t>(c.batch * c.n_kv * c.n_head_kv * c.head_dim),
                                 rng, c.value_range);
    const auto v =
        random_floats(static_cast<size_t>(c.batch * c.n_kv * c.n_head_kv * c.head_dim_v), rng, 1.f);
    const auto dout =
        random_floats(static_cast<size_t>(c.batch * c.n_q * c.n_head * c.head_dim_v), rng, 1.f);
    AttentionOptions ro = c.opt;
    ro.backend = Backend::reference;
    const Grads g = backward_dense(c, q, k, v, dout, ro);

    const auto p = kernels::make_problem(
        View4::dense(q.data(), DType::f32, {c.batch, c.n_q, c.n_head, c.head_dim}),
        View4::dense(k.data(), DType::f32, {c.batch, c.n_kv, c.n_head_kv, c.head_dim}),
        View4::dense(v.data(), DType::f32, {c.batch, c.n_kv, c.n_head_kv, c.head_dim_v}),
        MutView4{}, {}, c.opt, false);
    std::vector<double> qd(q.begin(), q.end()), kd(k.begin(), k.end()), vd(v.begin(), v.end());
    constexpr double h = 1e-4;
    auto check = [&](std::vector<double>& x, const std::vector<float>& grad, const char* name) {
      for (size_t n = 0; n < x.size(); ++n) {
        const double x0 = x[n];
        x[n] = x0 + h;
        const double up = forward_loss(p, qd, kd, vd, dout);
        x[n] = x0 - h;
        const double down = forward_loss(p, qd, kd, vd, dout);
        x[n] = x0;
        const double fd = (up - down) / (2 * h);
        ASSERT_NEAR(grad[n], fd, 2e-6 * (1 + std::fabs(fd))) << name << "[" << n << "]";
      }
    };
    check(qd, g.dq, "dq");
    check(kd, g.dk, "dk");
    check(vd, g.dv, "dv");
  }
}

// Everything one fast-vs-reference comparison needs, in the case's layout, with guards.
struct Prepared {
  Inputs in;
  Tensor dout;
  std::vector<float> out, lse;  // dense forward results of the reference
};

// The forward runs on `forward` (the reference unless a test needs only consistent out and lse).
Prepared prepare(Case& c, Backend forward = Backend::reference) {
  attach_options(c);
  Prepared r;
  r.in = make_inputs(c);
  std::mt19937 rng(c.seed + 1000);
  r.dout = make_tensor({c.batch, c.n_q, c.n_head, c.head_dim_v}, DType::f32, c.layout, rng, 1.f);
  r.out.resize(static_cast<size_t>(c.batch * c.n_q * c.n_head * c.head_dim_v));
  r.lse.resize(static_cast<size_t>(c.batch * c.n_head * c.n_q));
  AttentionOptions fo = c.opt;
  fo.backend = forward;
  attention(r.in.q.view, r.in.k.view, r.in.v.view,
            MutView4::dense(r.out.data(), {c.batch, c.n_q, c.n_head, c.head_dim_v}), r.lse, fo);
  return r;
}

struct GradOutputs {
  Output dq, dk, dv;
  GradOutputs(const Case& c, Layout layout)
      : dq({c.batch, c.n_q, c.n_head, c.head_dim}, layout),
        dk({c.batch, c.n_kv, c.n_head_kv, c.head_dim}, layout),
        dv({c.batch, c.n_kv, c.n_head_kv, c.head_dim_v}, layout) {}
};

// Runs the backward pass on `target` ("reference" for the oracle) with `threads` threads.
void run_backward(const Case& c, const Prepared& r, GradOutputs& g, std::string_view target,
                  int threads) {
  AttentionOptions o = c.opt;
  o.n_threads = threads;
  const View4 out =
      View4::dense(r.out.data(), DType::f32, {c.batch, c.n_q, c.n_head, c.head_dim_v});
  const kernels::BackwardProblem bp{
      kernels::make_problem(r.in.q.view, r.in.k.view, r.in.v.view, MutView4{}, {}, o, false),
      out,
      r.lse.data(),
      r.dout.view,
      g.dq.view,
      g.dk.view,
      g.dv.view};
  if (target == "reference") {
    kernels::attention_backward_reference(bp);
  } else {
    kernels::attention_backward_cpu_on(bp, target);
  }
}

// max |a - e| / (1 + |e|) over a tensor; NaN counts as infinite.
double max_err(const Output& a, const Output& e) {
  double err = 0;
  const auto& s = a.view.shape;
  for (int64_t b = 0; b < s[0]; ++b)
    for (int64_t i = 0; i < s[1]; ++i)
      for (int64_t h = 0; h < s[2]; ++h)
        for (int64_t c = 0; c < s[3]; ++c) {
          const double x = a.at(b, i, h, c), y = e.at(b, i, h, c);
          if (std::isnan(x)) return INFINITY;
          err = std::max(err, std::fabs(x - y) / (1 + std::fabs(y)));
        }
  return err;
}

std::vector<std::string_view> targets() {
  std::vector<std::string_view> t{"generic"};
  if (kernels::cpu::target_selected().name != std::string_view("generic")) t.push_back("avx2");
  return t;
}

// A random case: odd sizes, head_dim 1..256, n_q != n_kv, batch > 1, GQA/MQA, every layout, and
// masks drawn at random (some rows fully masked). The reference costs O(b h n_q n_kv d) in double,
// so sizes shrink as head_dim grows.
Case random_case(std::mt19937& rng, int n) {
  auto pick = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  static const int64_t dims[] = {1, 3, 8, 17, 32, 64, 100, 128, 256};
  Case c;
  c.seed = static_cast<uint32_t>(100 + n);
  c.head_dim = dims[pick(0, 8)];
  c.head_dim_v = pick(0, 3) == 0 ? dims[pick(0, 6)] : c.head_dim;
  const int64_t max_seq = c.head_dim >= 100 ? 80 : 150;
  c.batch = pick(1, 3);
  c.n_kv = pick(1, max_seq);
  c.n_q = pick(0, 2) == 0 ? c.n_kv : pick(1, max_seq);
  c.n_head_kv = pick(1, 2);
  c.n_head = c.n_head_kv * pick(1, 3);
  c.layout = static_cast<Layout>(pick(0, 2));
  c.value_range = pick(0, 1) ? 1.f : 3.f;
  c.opt.causal = pick(0, 1);
  if (pick(0, 3) == 0) {
    for (int64_t b = 0; b < c.batch; ++b)
      c.kv_lengths.push_back(static_cast<int32_t>(pick(0, c.n_kv)));
  }
  if (pick(0, 3) == 0) c.opt.window_left = pick(0, 40), c.opt.window_right = pick(-1, 10);
  if (pick(0, 4) == 0) c.opt.softcap = 2.f;
  if (pick(0, 4) == 0) {
    for (int64_t h = 0; h < c.n_head; ++h) c.alibi.push_back(0.05f * static_cast<float>(h + 1));
  }
  const int64_t mask = pick(0, 5);
  if (mask == 0) {
    c.boolean.resize(static_cast<size_t>(c.n_q * c.n_kv));
    for (auto& x : c.boolean) x = pick(0, 4) != 0;
    for (int64_t j = 0; j < c.n_kv; ++j) c.boolean[static_cast<size_t>(j)] = 0;  // row 0 masked
  } else if (mask == 1) {
    c.additive.resize(static_cast<size_t>(c.n_q * c.n_kv));
    for (auto& x : c.additive)
      x = pick(0, 9) == 0 ? -INFINITY : 0.1f * static_cast<float>(pick(-10, 10));
  }
  return c;
}

// (b) Fast vs reference. The fast kernel accumulates in fp32 over head_dim (scores) and over up
// to n_kv or group * n_q terms (dq, dk, dv), and its exp2 has a relative error < 2e-7; with
// |scores| up to ~10 (value range 3) that gives errors of a few 1e-6 relative to 1 + |g| in the
// worst cases measured (see the trace). 5e-5 leaves a 10x margin yet catches any wrong term.
TEST(AttentionBackward, FastMatchesReference) {
  std::mt19937 rng(2024);
  const int n_cases = cases(40);
  double worst = 0;
  for (int n = 0; n < n_cases; ++n) {
    Case c = random_case(rng, n);
    SCOPED_TRACE(c.name());
    const Prepared r = prepare(c);
    GradOutputs ref(c, Layout::bshd);
    run_backward(c, r, ref, "reference", 1);
    for (std::string_view target : targets()) {
      // The scalar generic target is slow under the sanitizers: every other case.
      if (target == "generic" && n % 2 == 1) continue;
      for (int threads : {1, 2}) {
        SCOPED_TRACE(std::string(target) + " threads " + std::to_string(threads));
        GradOutputs g(c, c.layout);
        run_backward(c, r, g, target, threads);
        EXPECT_TRUE(g.dq.guards_intact() && g.dk.guards_intact() && g.dv.guards_intact());
        const double e =
            std::max({max_err(g.dq, ref.dq), max_err(g.dk, ref.dk), max_err(g.dv, ref.dv)});
        worst = std::max(worst, e);
        EXPECT_LT(e, 5e-5);
        // A fully masked row (lse = -inf) gets exactly dq = 0.
        for (int64_t b = 0; b < c.batch; ++b)
          for (int64_t h = 0; h < c.n_head; ++h)
            for (int64_t i = 0; i < c.n_q; ++i) {
              if (r.lse[static_cast<size_t>((b * c.n_head + h) * c.n_q + i)] != -INFINITY) continue;
              for (int64_t d = 0; d < c.head_dim; ++d) ASSERT_EQ(g.dq.at(b, i, h, d), 0.f);
            }
      }
    }
  }
  std::printf("worst fast-vs-reference error: %.3g\n", worst);
}

// 1 and 2 threads. With 1 (sequence, kv head) pair the keys are split across items and dq is
// summed from per-thread partials, so the sums are reordered (fp32 reordering error only); with 8
// pairs each item owns its dq rows and the threads run whole items side by side.
TEST(AttentionBackward, ThreadCountsAgree) {
  for (int64_t batch : {1, 8}) {
    Case c;
    c.batch = batch, c.n_q = 150, c.n_kv = 233, c.n_head = 4, c.n_head_kv = 1, c.head_dim = 40;
    c.head_dim_v = 24, c.opt.causal = true;
    const Prepared r = prepare(c, Backend::cpu);
    GradOutputs one(c, Layout::bshd), two(c, Layout::bshd);
    run_backward(c, r, one, targets().back(), 1);
    run_backward(c, r, two, targets().back(), 2);
    EXPECT_LT(max_err(one.dq, two.dq), 1e-5);
    EXPECT_LT(max_err(one.dk, two.dk), 1e-5);
    EXPECT_LT(max_err(one.dv, two.dv), 1e-5);
  }
}

void expect_invalid(const std::function<void()>& f, const std::vector<std::string>& words) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one naming " << words[0];
  } catch (const InvalidArgument& e) {
    for (const auto& w : words)
      EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what();
  }
}

TEST(AttentionBackward, RejectsBadArguments) {
  const int64_t B = 1, NQ = 3, NKV = 4, H = 2, D = 8;
  std::vector<float> q(B * NQ * H * D, 0.1f), k(B * NKV * H * D, 0.1f), v(k), out(q), dout(q);
  std::vector<float> lse(B * H * NQ, 0.f), dq(q), dk(k), dv(k);
  std::vector<uint16_t> k16(k.size());
  const View4 qv = View4::dense(q.data(), DType::f32, {B, NQ, H, D});
  const View4 kv = View4::dense(k.data(), DType::f32, {B, NKV, H, D});
  const View4 vv = View4::dense(v.data(), DType::f32, {B, NKV, H, D});
  const View4 ov = View4::dense(out.data(), DType::f32, {B, NQ, H, D});
  const View4 gv = View4::dense(dout.data(), DType::f32, {B, NQ, H, D});
  const MutView4 dqv = MutView4::dense(dq.data(), {B, NQ, H, D});
  const MutView4 dkv = MutView4::dense(dk.data(), {B, NKV, H, D});
  const MutView4 dvv = MutView4::dense(dv.data(), {B, NKV, H, D});
  auto call = [&](const View4& o, std::span<const float> l, const View4& g, const MutView4& a,
                  const MutView4& b, const MutView4& c, const AttentionOptions& opt = {},
                  const View4* k_over = nullptr) {
    return [=] {
      attention_backward(qv, k_over ? *k_over : kv, k_over ? *k_over : vv, o, l, g, a, b, c, opt);
    };
  };
  EXPECT_NO_THROW(call(ov, lse, gv, dqv, dkv, dvv)());
  expect_invalid(call(ov, {}, gv, dqv, dkv, dvv), {"lse"});
  expect_invalid(
      call(ov, lse, View4::dense(dout.data(), DType::f32, {B, NQ, H, D - 1}), dqv, dkv, dvv),
      {"dout", "[1, 3, 2, 7]", "[1, 3, 2, 8]"});
  expect_invalid(
      call(View4::dense(out.data(), DType::f32, {B, NQ + 1, H, D}), lse, gv, dqv, dkv, dvv),
      {"out", "[1, 4, 2, 8]"});
  expect_invalid(call(ov, lse, gv, MutView4::dense(dq.data(), {B, NQ, H, D / 2}), dkv, dvv),
                 {"dq", "[1, 3, 2, 4]", "[1, 3, 2, 8]"});
  expect_invalid(call(ov, lse, gv, dqv, MutView4::dense(dk.data(), {B, NKV, 1, D}), dvv),
                 {"dk", "[1, 4, 1, 8]"});
  expect_invalid(call(ov, lse, gv, dqv, dkv, MutView4{nullptr, {B, NKV, H, D}, {}}),
                 {"dv", "null"});
  AttentionOptions bf;
  bf.precision = Precision::bf16;
  expect_invalid(call(ov, lse, gv, dqv, dkv, dvv, bf), {"bf16"});
  const View4 kh = View4::dense(k16.data(), DType::f16, {B, NKV, H, D});
  expect_invalid(call(ov, lse, gv, dqv, dkv, dvv, {}, &kh), {"f32", "f16"});
  AttentionOptions bad_len;
  const int32_t len[] = {9};
  bad_len.kv_lengths = len;
  expect_invalid(call(ov, lse, gv, dqv, dkv, dvv, bad_len), {"kv_lengths[0] = 9"});
  // A short lse or option array is refused by size, before anything reads past its end.
  expect_invalid(call(ov, std::span(lse).first(lse.size() - 1), gv, dqv, dkv, dvv),
                 {"lse has 5 values", "expected batch * n_head * n_q", "= 6"});
  const int32_t two_lens[] = {4, 4};
  bad_len.kv_lengths = two_lens;
  expect_invalid(call(ov, lse, gv, dqv, dkv, dvv, bad_len),
                 {"kv_lengths has 2 values, expected batch = 1"});
}

}  // namespace
}  // namespace qkv::test
