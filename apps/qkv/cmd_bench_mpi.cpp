// qkv bench attention --mpi: times ring attention over the ranks of `mpirun -np P qkv bench
// attention --mpi ...` and, on rank 0 while the others wait, one process with P times the
// threads of a rank on the whole problem. Each rank reports its compute time, the time its K/V
// transfers took and how much of that it waited for (not hidden behind the kernel); rank 0
// prints the table (docs/DISTRIBUTED.md explains the columns and the compute-bound model).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "bench_mpi.h"
#include "qkv/attention.h"
#include "qkv/distributed.h"
#include "qkv/error.h"

namespace qkv::app {
namespace cmd_bench_mpi {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

std::vector<uint16_t> to_half(const std::vector<float>& v, DType dt) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    h[i] = dt == DType::f16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
  return h;
}

// What one rank measured (the medians' run), gathered to every rank.
struct RankTimes {
  double total_s, compute_s, comm_s, wait_s;
  int64_t bytes_sent;
};

}  // namespace
}  // namespace cmd_bench_mpi

void run_bench_mpi(const MpiBenchArgs& args) {
  using namespace cmd_bench_mpi;
  MpiBenchArgs a = args;
  if (a.kv_heads == 0) a.kv_heads = a.heads;
  if (a.batch <= 0 || a.n_seq <= 0 || a.heads <= 0 || a.kv_heads <= 0 || a.head_dim <= 0) {
    throw InvalidArgument("bench attention --mpi: every size must be positive");
  }
  if (a.delay_us < 0) throw InvalidArgument("--mpi-delay-us must be >= 0");
  const DType dt = parse_dtype(a.dtype);
  if (a.backward && dt != DType::f32) {
    throw InvalidArgument("bench attention --mpi --backward needs --dtype f32");
  }
  Communicator& comm = Communicator::world();
  comm.delay_us = a.delay_us;
  const int P = comm.size(), r = comm.rank();
  const int threads = a.threads > 0 ? a.threads : 1;
  const int reps = a.reps > 0 ? a.reps : 3;
  const ZigZagShard s = zigzag_shard(a.n_seq, r, P);
  const int64_t n = s.n_local(), B = a.batch, H = a.heads, Hk = a.kv_heads, D = a.head_dim;

  // This rank's tokens (the data is random: only the shapes matter to the time).
  const auto q = random_floats(static_cast<size_t>(B * n * H * D), 1 + r);
  const auto k = random_floats(static_cast<size_t>(B * n * Hk * D), 100 + r);
  const auto v = random_floats(static_cast<size_t>(B * n * Hk * D), 200 + r);
  const auto kh = dt == DType::f32 ? std::vector<uint16_t>{} : to_half(k, dt);
  const auto vh = dt == DType::f32 ? std::vector<uint16_t>{} : to_half(v, dt);
  const View4 qv = View4::dense(q.data(), DType::f32, {B, n, H, D});
  const View4 kv = dt == DType::f32 ? View4::dense(k.data(), dt, {B, n, Hk, D})
                                    : View4::dense(kh.data(), dt, {B, n, Hk, D});
  const View4 vv = dt == DType::f32 ? View4::dense(v.data(), dt, {B, n, Hk, D})
                                    : View4::dense(vh.data(), dt, {B, n, Hk, D});
  std::vector<float> out(q.size()), lse(static_cast<size_t>(B * H * n));
  std::vector<float> dout, dq, dk, dv;
  AttentionOptions opt;
  opt.causal = a.causal;
  opt.n_threads = threads;
  auto run = [&](RingStats* st) {
    if (a.backward) {
      ring_attention_backward(comm, qv, kv, vv, View4::dense(out.data(), DType::f32, qv.shape), lse,
                              View4::dense(dout.data(), DType::f32, qv.shape),
                              MutView4::dense(dq.data(), qv.shape),
                              MutView4::dense(dk.data(), kv.shape),
                              MutView4::dense(dv.data(), vv.shape), a.n_seq, opt, st);
    } else {
      ring_attention(comm, qv, kv, vv, MutView4::dense(out.data(), qv.shape), lse, a.n_seq, opt,
                     st);
    }
  };
  if (a.backward) {
    dout = random_floats(q.size(), 300 + r);
    dq.resize(q.size()), dk.resize(k.size()), dv.resize(v.size());
    ring_attention(comm, qv, kv, vv, MutView4::dense(out.data(), qv.shape), lse, a.n_seq, opt);
  }
  // Warm-up, then `reps` timed calls, each started together; the run of median wall time counts.
  run(nullptr);
  std::vector<RingStats> runs;
  for (int i = 0; i < reps; ++i) {
    comm.barrier();
    RingStats st;
    run(&st);
    // The job's time is its slowest rank's.
    st.total_s = comm.max(st.total_s);
    runs.push_back(st);
  }
  std::sort(runs.begin(), runs.end(),
            [](const RingStats& x, const RingStats& y) { return x.total_s < y.total_s; });
  const RingStats med = runs[runs.size() / 2];
  RankTimes mine{med.total_s, med.compute_s, med.comm_s, med.wait_s, med.bytes_sent};
  std::vector<RankTimes> all(static_cast<size_t>(P));
  comm.allgather(&mine, all.data(), sizeof(RankTimes));

  // One process, P * threads threads, the whole problem (rank 0; the others wait).
  double single_s = 0;
  comm.barrier();
  if (r == 0) {
    const int64_t N = a.n_seq;
    const auto qg = random_floats(static_cast<size_t>(B * N * H * D), 7);
    const auto kg = random_floats(static_cast<size_t>(B * N * Hk * D), 8);
    const auto vg = random_floats(static_cast<size_t>(B * N * Hk * D), 9);
    const auto kgh = dt == DType::f32 ? std::vector<uint16_t>{} : to_half(kg, dt);
    const auto vgh = dt == DType::f32 ? std::vector<uint16_t>{} : to_half(vg, dt);
    const View4 qg_v = View4::dense(qg.data(), DType::f32, {B, N, H, D});
    const View4 kg_v = dt == DType::f32 ? View4::dense(kg.data(), dt, {B, N, Hk, D})
                                        : View4::dense(kgh.data(), dt, {B, N, Hk, D});
    const View4 vg_v = dt == DType::f32 ? View4::dense(vg.data(), dt, {B, N, Hk, D})
                                        : View4::dense(vgh.data(), dt, {B, N, Hk, D});
    std::vector<float> og(qg.size()), lg(static_cast<size_t>(B * H * N));
    std::vector<float> gq, gk, gv, gout;
    AttentionOptions o1 = opt;
    o1.n_threads = threads * P;
    auto single = [&] {
      if (a.backward) {
        attention_backward(qg_v, kg_v, vg_v, View4::dense(og.data(), DType::f32, qg_v.shape), lg,
                           View4::dense(gout.data(), DType::f32, qg_v.shape),
                           MutView4::dense(gq.data(), qg_v.shape),
                           MutView4::dense(gk.data(), kg_v.shape),
                           MutView4::dense(gv.data(), vg_v.shape), o1);
      } else {
        attention(qg_v, kg_v, vg_v, MutView4::dense(og.data(), qg_v.shape), lg, o1);
      }
    };
    if (a.backward) {
      gout = random_floats(qg.size(), 10);
      gq.resize(qg.size()), gk.resize(kg.size()), gv.resize(vg.size());
      attention(qg_v, kg_v, vg_v, MutView4::dense(og.data(), qg_v.shape), lg, o1);
    }
    single();
    std::vector<double> ts;
    for (int i = 0; i < reps; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      single();
      ts.push_back(seconds_since(t0));
    }
    std::sort(ts.begin(), ts.end());
    single_s = ts[ts.size() / 2];
  }
  comm.barrier();
  if (r != 0) return;

  const double flops =
      (a.backward ? 2.5 : 1.0) * attention_flops(B, H, a.n_seq, a.n_seq, D, a.causal);
  // The model (docs/DISTRIBUTED.md): a step is bound by the slower of its block's compute and
  // the block's transfer; the emulated link makes a transfer take at least delay_us. The compute
  // per step is what a rank measured without waiting, over its P steps.
  double step_compute_s = 0;
  for (const auto& t : all) step_compute_s = std::max(step_compute_s, t.compute_s / P);
  const double block_bytes = static_cast<double>(all[0].bytes_sent) / std::max(P - 1, 1);
  const double speed = single_s / med.total_s;
  if (a.json) {
    nlohmann::json j;
    j["ranks"] = P;
    j["n_seq"] = a.n_seq;
    j["batch"] = B;
    j["heads"] = H;
    j["kv_heads"] = Hk;
    j["head_dim"] = D;
    j["causal"] = a.causal;
    j["backward"] = a.backward;
    j["dtype"] = a.dtype;
    j["threads_per_rank"] = threads;
    j["delay_us"] = a.delay_us;
    j["reps"] = reps;
    j["ring_s"] = med.total_s;
    j["single_s"] = single_s;
    j["single_threads"] = threads * P;
    j["speed_vs_single"] = speed;
    j["gflops"] = flops / med.total_s * 1e-9;
    j["step_compute_s"] = step_compute_s;
    j["block_bytes"] = block_bytes;
    j["predicted_crossover_us"] = step_compute_s * 1e6;
    for (int i = 0; i < P; ++i) {
      const auto& t = all[i];
      j["per_rank"].push_back({{"rank", i},
                               {"total_s", t.total_s},
                               {"compute_s", t.compute_s},
                               {"comm_s", t.comm_s},
                               {"wait_s", t.wait_s},
                               {"hidden", t.comm_s > 0 ? 1.0 - t.wait_s / t.comm_s : 1.0},
                               {"bytes_sent", t.bytes_sent}});
    }
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf(
      "ring attention%s over %d ranks: batch %lld, n_seq %lld, heads %lld/%lld, head_dim "
      "%lld, %s, k/v %s, %d thread(s) per rank, emulated link delay %lld us\n",
      a.backward ? " backward" : "", P, (long long)B, (long long)a.n_seq, (long long)H,
      (long long)Hk, (long long)D, a.causal ? "causal" : "full", a.dtype.c_str(), threads,
      (long long)a.delay_us);
  std::printf("%6s %10s %10s %10s %10s %8s %10s\n", "rank", "total ms", "compute ms", "comm ms",
              "waited ms", "hidden", "sent MiB");
  for (int i = 0; i < P; ++i) {
    const auto& t = all[i];
    std::printf("%6d %10.2f %10.2f %10.2f %10.2f %7.1f%% %10.2f\n", i, t.total_s * 1e3,
                t.compute_s * 1e3, t.comm_s * 1e3, t.wait_s * 1e3,
                100.0 * (t.comm_s > 0 ? 1.0 - t.wait_s / t.comm_s : 1.0),
                static_cast<double>(t.bytes_sent) / (1 << 20));
  }
  std::printf(
      "ring: %.2f ms (%.1f GFLOP/s); one process, %d threads: %.2f ms; ring speed = "
      "%.1f%% of one process\n",
      med.total_s * 1e3, flops / med.total_s * 1e-9, threads * P, single_s * 1e3, 100.0 * speed);
  std::printf(
      "model: compute per step %.0f us, block %.2f MiB: compute-bound while a block's "
      "transfer takes under %.0f us (a link of at least %.2f Gb/s)\n",
      step_compute_s * 1e6, block_bytes / (1 << 20), step_compute_s * 1e6,
      step_compute_s > 0 ? block_bytes * 8 / step_compute_s * 1e-9 : 0.0);
}

}  // namespace qkv::app
