// Ring attention, its backward and sharded decode against the single-process kernel, run under
// `mpirun -np N` by run_mpi.py (every rank runs every test; the collectives inside line up because
// every rank runs the same cases in the same order). Each rank builds the whole problem from the
// same seed, computes the single-process answer and checks its own rows of it.
//
// Tolerance 1e-5 (absolute, on outputs of magnitude <= 1 and lse): the ring computes the same
// fp32 softmax as one call, only merging the partial sums of other key blocks by LSE in another
// order; that reordering moves results by a few ulps (measured max 1e-6 on these sizes).
//
// Besides the tests, `--fault kill|stop` runs a long ring in which rank 1 dies (SIGKILL) or hangs
// (SIGSTOP) mid-run, for run_mpi.py's fault checks.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "qkv/attention.h"
#include "qkv/distributed.h"
#include "qkv/error.h"

namespace qkv {
namespace {

constexpr float kTol = 1e-5f;

std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

struct Case {
  std::string name;
  int64_t batch = 1, n_seq = 37, n_head = 4, n_head_kv = 2, head_dim = 16, head_dim_v = 16;
  bool causal = false;
  int64_t window_left = -1, window_right = -1;
  bool kv_lengths = false, q_offsets = false, alibi = false;
  float softcap = 0.f;
  MaskKind mask = MaskKind::none;
  bool f16 = false;
  bool q8 = false;  // k and v as q8_0 blocks (head_dim a multiple of 32)
};

std::vector<Case> cases() {
  std::vector<Case> c;
  auto add = [&](std::string name, auto edit) {
    Case x;
    x.name = std::move(name);
    edit(x);
    c.push_back(x);
  };
  add("plain", [](Case&) {});
  add("causal", [](Case& x) { x.causal = true; });
  add("causal_mha_batch2",
      [](Case& x) { x.causal = true, x.batch = 2, x.n_head_kv = 4, x.n_seq = 50; });
  add("causal_mqa_dv", [](Case& x) { x.causal = true, x.n_head_kv = 1, x.head_dim_v = 8; });
  add("causal_tiny", [](Case& x) { x.causal = true, x.n_seq = 3; });
  add("causal_long", [](Case& x) { x.causal = true, x.n_seq = 301; });
  add("window_causal", [](Case& x) { x.causal = true, x.window_left = 5; });
  add("window_both", [](Case& x) { x.window_left = 4, x.window_right = 7; });
  add("kv_lengths", [](Case& x) { x.kv_lengths = true, x.batch = 2; });
  add("q_offsets_causal", [](Case& x) { x.q_offsets = true, x.causal = true, x.batch = 2; });
  add("alibi_causal", [](Case& x) { x.alibi = true, x.causal = true; });
  add("alibi", [](Case& x) { x.alibi = true; });
  add("softcap", [](Case& x) { x.softcap = 2.f, x.causal = true; });
  add("mask_boolean", [](Case& x) { x.mask = MaskKind::boolean; });
  add("mask_additive_causal", [](Case& x) { x.mask = MaskKind::additive, x.causal = true; });
  add("f16_causal", [](Case& x) { x.f16 = true, x.causal = true; });
  add("q8_0_causal", [](Case& x) { x.q8 = true, x.causal = true, x.head_dim = x.head_dim_v = 32; });
  add("q8_0_window_mqa_long", [](Case& x) {
    x.q8 = true, x.causal = true, x.window_left = 9, x.n_head_kv = 1, x.n_seq = 301;
    x.head_dim = x.head_dim_v = 64;
  });
  return c;
}

// The global problem of a case, identical on every rank.
struct Problem {
  Case c;
  std::vector<float> q, k, v, dout;  // [batch, n_seq, heads, dim]
  std::vector<uint16_t> k16, v16;
  std::vector<uint8_t> k8, v8;  // q8_0 blocks
  std::vector<int32_t> kv_lengths, q_offsets;
  std::vector<float> slopes;
  std::vector<uint8_t> mask_b;
  std::vector<float> mask_a;
  AttentionOptions opt;

  explicit Problem(const Case& cs) : c(cs) {
    const int64_t B = c.batch, N = c.n_seq;
    q = random_vec(static_cast<size_t>(B * N * c.n_head * c.head_dim), 1);
    k = random_vec(static_cast<size_t>(B * N * c.n_head_kv * c.head_dim), 2);
    v = random_vec(static_cast<size_t>(B * N * c.n_head_kv * c.head_dim_v), 3);
    dout = random_vec(static_cast<size_t>(B * N * c.n_head * c.head_dim_v), 4);
    if (c.f16) {
      for (float x : k) k16.push_back(f32_to_f16(x));
      for (float x : v) v16.push_back(f32_to_f16(x));
    }
    if (c.q8) {
      const auto nk = static_cast<int64_t>(k.size()), nv = static_cast<int64_t>(v.size());
      k8.resize(static_cast<size_t>(dtype_bytes(DType::q8_0, nk)));
      v8.resize(static_cast<size_t>(dtype_bytes(DType::q8_0, nv)));
      convert_from_f32(k.data(), nk, DType::q8_0, k8.data());
      convert_from_f32(v.data(), nv, DType::q8_0, v8.data());
    }
    opt.causal = c.causal;
    opt.window_left = c.window_left;
    opt.window_right = c.window_right;
    opt.softcap = c.softcap;
    opt.n_threads = 1;
    if (c.kv_lengths) {
      for (int64_t b = 0; b < B; ++b) kv_lengths.push_back(static_cast<int32_t>(N - 5 - 7 * b));
      opt.kv_lengths = kv_lengths;
    }
    if (c.q_offsets) {
      for (int64_t b = 0; b < B; ++b) q_offsets.push_back(static_cast<int32_t>(3 * b + 2));
      opt.q_offsets = q_offsets;
    }
    if (c.alibi) {
      for (int64_t h = 0; h < c.n_head; ++h) slopes.push_back(0.25f / static_cast<float>(h + 1));
      opt.alibi_slopes = slopes;
    }
    if (c.mask == MaskKind::boolean) {
      std::mt19937 rng(5);
      for (int64_t i = 0; i < N * N; ++i) mask_b.push_back(rng() % 4 != 0);
      opt.mask = {MaskKind::boolean, mask_b.data(), N, N, N, 1};
    } else if (c.mask == MaskKind::additive) {
      mask_a = random_vec(static_cast<size_t>(N * N), 6, -2.f, 0.f);
      opt.mask = {MaskKind::additive, mask_a.data(), N, N, N, 1};
    }
  }
  View4 qv() const {
    return View4::dense(q.data(), DType::f32, {c.batch, c.n_seq, c.n_head, c.head_dim});
  }
  View4 kv() const {
    if (c.q8)
      return View4::dense(k8.data(), DType::q8_0, {c.batch, c.n_seq, c.n_head_kv, c.head_dim});
    return c.f16 ? View4::dense(k16.data(), DType::f16, {c.batch, c.n_seq, c.n_head_kv, c.head_dim})
                 : View4::dense(k.data(), DType::f32, {c.batch, c.n_seq, c.n_head_kv, c.head_dim});
  }
  View4 vv() const {
    if (c.q8) {
      return View4::dense(v8.data(), DType::q8_0, {c.batch, c.n_seq, c.n_head_kv, c.head_dim_v});
    }
    return c.f16
               ? View4::dense(v16.data(), DType::f16, {c.batch, c.n_seq, c.n_head_kv, c.head_dim_v})
               : View4::dense(v.data(), DType::f32, {c.batch, c.n_seq, c.n_head_kv, c.head_dim_v});
  }
};

// Rows of this rank's shard, [batch, n_local, heads, dim], from a global [batch, n_seq, ...].
template <typename T>
std::vector<T> local_rows(const std::vector<T>& g, const ZigZagShard& s, int64_t B, int64_t N,
                          int64_t row) {
  std::vector<T> out;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < s.n_local(); ++t) {
      const T* p = g.data() + (b * N + s.global(t)) * row;
      out.insert(out.end(), p, p + row);
    }
  }
  return out;
}

// lse [batch, heads, n_seq] -> [batch, heads, n_local]
std::vector<float> local_lse(const std::vector<float>& g, const ZigZagShard& s, int64_t BH,
                             int64_t N) {
  std::vector<float> out;
  for (int64_t bh = 0; bh < BH; ++bh) {
    for (int64_t t = 0; t < s.n_local(); ++t) out.push_back(g[bh * N + s.global(t)]);
  }
  return out;
}

void expect_near(const std::vector<float>& got, const std::vector<float>& want, const char* what,
                 const std::string& name) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isinf(want[i]) || std::isinf(got[i])) {
      EXPECT_EQ(got[i], want[i]) << name << " " << what << "[" << i << "]";
      continue;
    }
    const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (d > worst || std::isnan(got[i])) worst = std::isnan(got[i]) ? 1e9 : d, at = i;
  }
  EXPECT_LE(worst, kTol) << name << " " << what << ": worst at " << at << ", got " << got[at]
                         << " want " << want[at];
}

TEST(RingAttention, ForwardMatchesSingleProcess) {
  Communicator& comm = Communicator::world();
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const Problem p(c);
    const int64_t B = c.batch, N = c.n_seq, H = c.n_head, Dv = c.head_dim_v;
    std::vector<float> ref_out(static_cast<size_t>(B * N * H * Dv));
    std::vector<float> ref_lse(static_cast<size_t>(B * H * N));
    attention(p.qv(), p.kv(), p.vv(), MutView4::dense(ref_out.data(), {B, N, H, Dv}), ref_lse,
              p.opt);

    const ZigZagShard s = zigzag_shard(N, comm.rank(), comm.size());
    const int64_t n = s.n_local();
    const auto q = local_rows(p.q, s, B, N, H * c.head_dim);
    std::vector<float> k32, v32;
    std::vector<uint16_t> k16, v16;
    std::vector<uint8_t> k8, v8;
    View4 kl, vl;
    if (c.q8) {
      k8 = local_rows(p.k8, s, B, N, dtype_bytes(DType::q8_0, c.n_head_kv * c.head_dim));
      v8 = local_rows(p.v8, s, B, N, dtype_bytes(DType::q8_0, c.n_head_kv * Dv));
      kl = View4::dense(k8.data(), DType::q8_0, {B, n, c.n_head_kv, c.head_dim});
      vl = View4::dense(v8.data(), DType::q8_0, {B, n, c.n_head_kv, Dv});
    } else if (c.f16) {
      k16 = local_rows(p.k16, s, B, N, c.n_head_kv * c.head_dim);
      v16 = local_rows(p.v16, s, B, N, c.n_head_kv * Dv);
      kl = View4::dense(k16.data(), DType::f16, {B, n, c.n_head_kv, c.head_dim});
      vl = View4::dense(v16.data(), DType::f16, {B, n, c.n_head_kv, Dv});
    } else {
      k32 = local_rows(p.k, s, B, N, c.n_head_kv * c.head_dim);
      v32 = local_rows(p.v, s, B, N, c.n_head_kv * Dv);
      kl = View4::dense(k32.data(), DType::f32, {B, n, c.n_head_kv, c.head_dim});
      vl = View4::dense(v32.data(), DType::f32, {B, n, c.n_head_kv, Dv});
    }
    std::vector<float> out(static_cast<size_t>(B * n * H * Dv), -7.f),
        lse(static_cast<size_t>(B * H * n));
    RingStats st;
    ring_attention(comm, View4::dense(q.data(), DType::f32, {B, n, H, c.head_dim}), kl, vl,
                   MutView4::dense(out.data(), {B, n, H, Dv}), lse, N, p.opt, &st);
    expect_near(out, local_rows(ref_out, s, B, N, H * Dv), "out", c.name);
    expect_near(lse, local_lse(ref_lse, s, B * H, N), "lse", c.name);
    EXPECT_EQ(st.steps, comm.size() - 1);
  }
}

TEST(RingAttention, BackwardMatchesSingleProcess) {
  Communicator& comm = Communicator::world();
  for (const Case& c : cases()) {
    if (c.f16 || c.q8) continue;  // the backward takes fp32 k and v, as attention_backward
    SCOPED_TRACE(c.name);
    const Problem p(c);
    const int64_t B = c.batch, N = c.n_seq, H = c.n_head, Hk = c.n_head_kv, D = c.head_dim,
                  Dv = c.head_dim_v;
    std::vector<float> ref_out(static_cast<size_t>(B * N * H * Dv));
    std::vector<float> ref_lse(static_cast<size_t>(B * H * N));
    attention(p.qv(), p.kv(), p.vv(), MutView4::dense(ref_out.data(), {B, N, H, Dv}), ref_lse,
              p.opt);
    std::vector<float> rdq(p.q.size()), rdk(p.k.size()), rdv(p.v.size());
    attention_backward(
        p.qv(), p.kv(), p.vv(), View4::dense(ref_out.data(), DType::f32, {B, N, H, Dv}), ref_lse,
        View4::dense(p.dout.data(), DType::f32, {B, N, H, Dv}),
        MutView4::dense(rdq.data(), {B, N, H, D}), MutView4::dense(rdk.data(), {B, N, Hk, D}),
        MutView4::dense(rdv.data(), {B, N, Hk, Dv}), p.opt);

    const ZigZagShard s = zigzag_shard(N, comm.rank(), comm.size());
    const int64_t n = s.n_local();
    const auto q = local_rows(p.q, s, B, N, H * D);
    const auto k = local_rows(p.k, s, B, N, Hk * D);
    const auto v = local_rows(p.v, s, B, N, Hk * Dv);
    const auto out = local_rows(ref_out, s, B, N, H * Dv);
    const auto dout = local_rows(p.dout, s, B, N, H * Dv);
    const auto lse = local_lse(ref_lse, s, B * H, N);
    std::vector<float> dq(q.size(), -7.f), dk(k.size(), -7.f), dv(v.size(), -7.f);
    ring_attention_backward(comm, View4::dense(q.data(), DType::f32, {B, n, H, D}),
                            View4::dense(k.data(), DType::f32, {B, n, Hk, D}),
                            View4::dense(v.data(), DType::f32, {B, n, Hk, Dv}),
                            View4::dense(out.data(), DType::f32, {B, n, H, Dv}), lse,
                            View4::dense(dout.data(), DType::f32, {B, n, H, Dv}),
                            MutView4::dense(dq.data(), {B, n, H, D}),
                            MutView4::dense(dk.data(), {B, n, Hk, D}),
                            MutView4::dense(dv.data(), {B, n, Hk, Dv}), N, p.opt);
    expect_near(dq, local_rows(rdq, s, B, N, H * D), "dq", c.name);
    expect_near(dk, local_rows(rdk, s, B, N, Hk * D), "dk", c.name);
    expect_near(dv, local_rows(rdv, s, B, N, Hk * Dv), "dv", c.name);
  }
}

TEST(ShardedDecode, MatchesSingleProcess) {
  Communicator& comm = Communicator::world();
  for (const Case& base : cases()) {
    for (int64_t n_q : {1, 3}) {
      Case c = base;
      SCOPED_TRACE(c.name + " n_q=" + std::to_string(n_q));
      if (c.mask != MaskKind::none) continue;  // the cases' masks are [n_seq, n_seq]
      const Problem p(c);
      const int64_t B = c.batch, N = c.n_seq, H = c.n_head, Dv = c.head_dim_v;
      // The last n_q tokens' queries against all N keys.
      const View4 qv = View4::dense(p.q.data() + (N - n_q) * H * c.head_dim * 0, DType::f32,
                                    {B, n_q, H, c.head_dim});
      std::vector<float> ref_out(static_cast<size_t>(B * n_q * H * Dv));
      std::vector<float> ref_lse(static_cast<size_t>(B * H * n_q));
      attention(qv, p.kv(), p.vv(), MutView4::dense(ref_out.data(), {B, n_q, H, Dv}), ref_lse,
                p.opt);
      // Uneven shards, in reverse rank order: rank r holds the r-th shard from the end.
      const int P = comm.size(), r = P - 1 - comm.rank();
      const int64_t begin = N * r * r / (P * P), end = N * (r + 1) * (r + 1) / (P * P);
      View4 ks = p.kv(), vs = p.vv();
      ks.data = static_cast<const char*>(ks.data) + dtype_bytes(ks.dtype, begin * ks.stride[1]);
      vs.data = static_cast<const char*>(vs.data) + dtype_bytes(vs.dtype, begin * vs.stride[1]);
      ks.shape[1] = vs.shape[1] = end - begin;
      std::vector<float> out(ref_out.size(), -7.f), lse(ref_lse.size());
      sharded_decode_attention(comm, qv, ks, vs, MutView4::dense(out.data(), {B, n_q, H, Dv}), lse,
                               begin, N, p.opt);
      expect_near(out, ref_out, "out", c.name);
      expect_near(lse, ref_lse, "lse", c.name);
    }
  }
}

// A shard of several ranges per rank (a context-parallel KV cache: zig-zag chunks, then runs of
// decode tokens): 3P ranges of uneven sizes dealt round-robin, so every rank holds three
// non-adjacent ones.
TEST(ShardedDecode, RangesMatchSingleProcess) {
  Communicator& comm = Communicator::world();
  for (const Case& c : cases()) {
    if (c.mask != MaskKind::none || c.batch != 1) continue;
    SCOPED_TRACE(c.name);
    const Problem p(c);
    const int64_t N = c.n_seq, H = c.n_head, Dv = c.head_dim_v, n_q = 2;
    const View4 qv = View4::dense(p.q.data(), DType::f32, {1, n_q, H, c.head_dim});
    std::vector<float> ref_out(static_cast<size_t>(n_q * H * Dv));
    std::vector<float> ref_lse(static_cast<size_t>(H * n_q));
    attention(qv, p.kv(), p.vv(), MutView4::dense(ref_out.data(), {1, n_q, H, Dv}), ref_lse, p.opt);
    const int P = comm.size(), n_ranges = 3 * P;
    std::vector<KeyRange> mine;
    for (int j = 0; j < n_ranges; ++j) {
      const int64_t b = N * j * j / (n_ranges * n_ranges);
      const int64_t e = N * (j + 1) * (j + 1) / (n_ranges * n_ranges);
      if (j % P == comm.rank()) mine.push_back({b, e - b});
    }
    // This rank's keys packed in the order of its ranges.
    const View4 kf = p.kv(), vf = p.vv();
    const int64_t krow = dtype_bytes(kf.dtype, kf.stride[1]);
    const int64_t vrow = dtype_bytes(vf.dtype, vf.stride[1]);
    std::vector<char> kb, vb;
    int64_t held = 0;
    for (const KeyRange& r : mine) {
      const char* k0 = static_cast<const char*>(kf.data) + r.begin * krow;
      const char* v0 = static_cast<const char*>(vf.data) + r.begin * vrow;
      kb.insert(kb.end(), k0, k0 + r.len * krow);
      vb.insert(vb.end(), v0, v0 + r.len * vrow);
      held += r.len;
    }
    kb.resize(kb.size() + 64), vb.resize(vb.size() + 64);  // a valid pointer when empty
    const View4 ks = View4::dense(kb.data(), kf.dtype, {1, held, c.n_head_kv, c.head_dim});
    const View4 vs = View4::dense(vb.data(), vf.dtype, {1, held, c.n_head_kv, Dv});
    std::vector<float> out(ref_out.size(), -7.f), lse(ref_lse.size());
    sharded_decode_attention(comm, qv, ks, vs, MutView4::dense(out.data(), {1, n_q, H, Dv}), lse,
                             std::span<const KeyRange>(mine), N, p.opt);
    expect_near(out, ref_out, "out", c.name);
    expect_near(lse, ref_lse, "lse", c.name);
  }
}

TEST(JobArguments, ADifferentValueIsNamedWithBothValues) {
  Communicator& comm = Communicator::world();
  const std::vector<JobArgument> same = {{"--model", "m.gguf"}, {"--prompt", "a cat"}};
  EXPECT_NO_THROW(check_same_arguments(comm, "test", same));
  if (comm.size() < 2) GTEST_SKIP() << "needs two ranks";
  const std::vector<JobArgument> args = {{"--model", "m.gguf"},
                                         {"--prompt", comm.rank() == 1 ? "a dog" : "a cat"}};
  try {
    check_same_arguments(comm, "test", args);
    ADD_FAILURE() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "test: rank 1 was given --prompt = \"a dog\" but rank 0 \"a cat\""),
              std::string::npos)
        << e.what();
  }
}

TEST(RingAttention, MismatchedArgumentsAreReportedBeforeAnyWork) {
  Communicator& comm = Communicator::world();
  if (comm.size() < 2) GTEST_SKIP() << "needs two ranks";
  Case c;
  const Problem p(c);
  AttentionOptions opt = p.opt;
  opt.causal = comm.rank() == 1;  // rank 1 was started with another mask
  const ZigZagShard s = zigzag_shard(c.n_seq, comm.rank(), comm.size());
  const int64_t n = s.n_local(), B = c.batch, H = c.n_head, Hk = c.n_head_kv, D = c.head_dim;
  std::vector<float> q(static_cast<size_t>(B * n * H * D)), k(static_cast<size_t>(B * n * Hk * D));
  std::vector<float> out(q.size());
  try {
    ring_attention(comm, View4::dense(q.data(), DType::f32, {B, n, H, D}),
                   View4::dense(k.data(), DType::f32, {B, n, Hk, D}),
                   View4::dense(k.data(), DType::f32, {B, n, Hk, D}),
                   MutView4::dense(out.data(), {B, n, H, D}), {}, c.n_seq, opt);
    ADD_FAILURE() << "no error";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 passed causal = 1 but rank 0 passed 0"),
              std::string::npos)
        << e.what();
  }
}

// q8_0 blocks travel whole: a head_dim that is not whole blocks is refused before any transfer,
// on every rank alike.
TEST(RingAttention, Q8HeadDimOfPartBlocksIsRefused) {
  Communicator& comm = Communicator::world();
  const int64_t n_seq = 8, n = zigzag_shard(n_seq, comm.rank(), comm.size()).n_local();
  std::vector<float> q(static_cast<size_t>(n * 16) + 1), out(q.size());
  std::vector<uint8_t> kv(64);
  const View4 qv = View4::dense(q.data(), DType::f32, {1, n, 1, 16});
  const View4 k8 = View4::dense(kv.data(), DType::q8_0, {1, n, 1, 16});
  for (int which = 0; which < 2; ++which) {
    try {
      if (which == 0) {
        ring_attention(comm, qv, k8, k8, MutView4::dense(out.data(), {1, n, 1, 16}), {}, n_seq);
      } else {
        sharded_decode_attention(comm, qv, k8, k8, MutView4::dense(out.data(), {1, n, 1, 16}), {},
                                 0, n, {});
      }
      ADD_FAILURE() << "not refused";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("k is q8_0 with head_dim 16, not a multiple of its 32"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(ZigZag, ChunksTileTheSequence) {
  for (int P : {1, 2, 3, 4}) {
    for (int64_t n : {0, 1, 3, 7, 8, 37, 100}) {
      std::vector<int> seen(static_cast<size_t>(n), 0);
      for (int r = 0; r < P; ++r) {
        const ZigZagShard s = zigzag_shard(n, r, P);
        for (int64_t t = 0; t < s.n_local(); ++t) ++seen[static_cast<size_t>(s.global(t))];
        EXPECT_LE(std::abs(s.len[0] - s.len[1]), 1);
      }
      for (int x : seen) EXPECT_EQ(x, 1) << "P=" << P << " n=" << n;
    }
  }
}

// A ring that runs long enough to lose a rank in the middle: rank 1 kills or stops itself at
// the third call. The other ranks must end with an error naming rank 1 (run_mpi.py checks).
int run_fault(const std::string& mode) {
  Communicator& comm = Communicator::world();
  const int64_t B = 1, N = 4096, H = 4, D = 64;
  const ZigZagShard s = zigzag_shard(N, comm.rank(), comm.size());
  const int64_t n = s.n_local();
  const auto q = random_vec(static_cast<size_t>(B * n * H * D), 1);
  std::vector<float> out(q.size());
  AttentionOptions opt;
  opt.causal = true;
  opt.n_threads = 1;
  try {
    for (int it = 0; it < 200; ++it) {
      if (it == 3 && comm.rank() == 1) {
        std::fprintf(stderr, "rank 1: %s myself now\n", mode == "kill" ? "killing" : "stopping");
        std::fflush(stderr);
        raise(mode == "kill" ? SIGKILL : SIGSTOP);
      }
      const View4 t = View4::dense(q.data(), DType::f32, {B, n, H, D});
      ring_attention(comm, t, t, t, MutView4::dense(out.data(), {B, n, H, D}), {}, N, opt);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 3;
  }
  std::fprintf(stderr, "rank %d: finished without noticing the lost rank\n", comm.rank());
  return 0;
}

}  // namespace
}  // namespace qkv

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--fault") return qkv::run_fault(argv[2]);
  ::testing::InitGoogleTest(&argc, argv);
  qkv::Communicator& comm = qkv::Communicator::world();
  const int rc = RUN_ALL_TESTS();
  // The job fails when any rank failed.
  const double worst = comm.max(rc);
  if (worst != 0 && comm.rank() == 0) std::fprintf(stderr, "a rank failed (see above)\n");
  return worst != 0 ? 1 : 0;
}
