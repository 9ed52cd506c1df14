// Tests of the CUDA attention backend. The host-side logic (argument checks, option refusal,
// launch planning) runs everywhere; the kernel tests compare with the CPU reference (double
// accumulation) on random inputs and skip when no CUDA device is present.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "cuda/attention_cuda_impl.h"
#include "cuda/flash_params.h"
#include "kernels/attention_problem.h"
#include "qkv/attention_cuda.h"
#include "qkv/error.h"

namespace qkv {
namespace {

using cuda::plan_launch;

// ---------------------------------------------------------------- planning

TEST(CudaPlan, DecodeSplitsKeysAndCoversEveryTile) {
  // batch 16 x 8 KV heads, one query, GQA 4: 4 packed rows per head, 128 blocks < 132 SMs.
  const auto p = plan_launch(16, 8, 4, 32768, 128, 132);
  EXPECT_EQ(p.m_tiles, 1);
  EXPECT_EQ(p.m_blocks, 1);
  EXPECT_GT(p.n_splits, 1);
  const int n_tiles = 32768 / cuda::kBlockN;
  EXPECT_GE(p.n_splits * p.tiles_per_split, n_tiles);
  EXPECT_LT((p.n_splits - 1) * p.tiles_per_split, n_tiles) << "no empty split";
}

TEST(CudaPlan, PrefillUsesTwoTilesPerWarpAndNoSplit) {
  const auto p = plan_launch(4, 32, 4096, 4096, 128, 132);
  EXPECT_EQ(p.m_tiles, 2);
  EXPECT_EQ(p.m_blocks, 4096 / cuda::block_m(2));
  EXPECT_EQ(p.n_splits, 1);
}

TEST(CudaPlan, HeadDim256UsesOneTilePerWarp) {
  EXPECT_EQ(plan_launch(1, 8, 4096, 4096, 256, 132).m_tiles, 1);
}

TEST(CudaPlan, ShortKeysAreNotSplitBelowFourTiles) {
  const auto p = plan_launch(1, 1, 1, 100, 128, 132);  // 2 tiles
  EXPECT_EQ(p.n_splits, 1);
}

TEST(CudaPlan, ForcedSplitsAreClampedToTheTiles) {
  const auto p = plan_launch(1, 1, 1, 200, 64, 132, 50);  // 4 tiles
  EXPECT_EQ(p.n_splits, 4);
  EXPECT_EQ(p.tiles_per_split, 1);
  const auto q = plan_launch(1, 1, 1, 1000, 64, 132, 3);  // 16 tiles -> 6, 6, 4
  EXPECT_EQ(q.n_splits, 3);
  EXPECT_EQ(q.tiles_per_split, 6);
}

TEST(CudaPlan, HopperPrefillAtHeadDim64And128UsesTheSm90Kernel) {
  using cuda::FlashKernel;
  const auto p = plan_launch(4, 32, 4096, 4096, 128, 132, 0, /*sm90=*/true);
  EXPECT_EQ(p.kernel, FlashKernel::sm90);
  EXPECT_EQ(p.m_blocks, 4096 / cuda::kSm90BlockM);
  const auto d64 = plan_launch(4, 32, 4096, 4096, 64, 132, 0, true);
  EXPECT_EQ(d64.kernel, FlashKernel::sm90_1wg);
  EXPECT_EQ(d64.m_blocks, 4096 / 64);
  EXPECT_EQ(plan_launch(4, 32, 4096, 4096, 96, 132, 0, true).kernel, FlashKernel::mma);
  EXPECT_EQ(plan_launch(16, 8, 4, 32768, 128, 132, 0, true).kernel, FlashKernel::mma)
      << "decode stays on the 64-row mma kernel";
  EXPECT_EQ(plan_launch(4, 32, 4096, 4096, 128, 132, 0, false).kernel, FlashKernel::mma);
  EXPECT_EQ(plan_launch(4, 32, 4096, 4096, 128, 132, 0, true, FlashKernel::mma).kernel,
            FlashKernel::mma);
  EXPECT_THROW(plan_launch(1, 1, 512, 512, 128, 132, 0, false, FlashKernel::sm90), InvalidArgument);
  EXPECT_THROW(plan_launch(1, 1, 512, 512, 256, 132, 0, true, FlashKernel::sm90), InvalidArgument);
}

// ---------------------------------------------------------------- argument checks

// Host buffers standing in for device memory: every refusal happens before any CUDA call.
struct FakeCall {
  alignas(16) static inline uint16_t buf[1 << 16];
  View4 q = View4::dense(buf, DType::bf16, {2, 8, 4, 64});
  View4 k = View4::dense(buf, DType::bf16, {2, 16, 2, 64});
  View4 v = View4::dense(buf, DType::bf16, {2, 16, 2, 64});
  OutView4 out = OutView4::dense(buf, DType::f32, {2, 8, 4, 64});
  AttentionOptions opt;

  void expect_refused(const std::string& needle) const {
    try {
      cuda::make_flash_params(q, k, v, out, {}, opt);
      ADD_FAILURE() << "expected InvalidArgument mentioning '" << needle << "'";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
};

TEST(CudaArgs, AcceptsAValidCall) {
  FakeCall c;
  c.opt.causal = true;
  const auto f = cuda::make_flash_params(c.q, c.k, c.v, c.out, {}, c.opt);
  EXPECT_EQ(f.group, 2);
  EXPECT_EQ(f.n_rows, 16);
  EXPECT_TRUE(f.bf16);
  EXPECT_NEAR(f.scale_log2, 1.4426950408889634 / 8.0, 1e-7);
}

TEST(CudaArgs, RefusesUnsupportedOptionsByName) {
  FakeCall c;
  uint8_t mask_data[8 * 16] = {};
  c.opt.mask = {MaskKind::boolean, mask_data, 8, 16, 16, 1};
  c.expect_refused("options.mask");
  c.opt = {};
  const float slopes[4] = {};
  c.opt.alibi_slopes = slopes;
  c.expect_refused("options.alibi_slopes");
  c.opt = {};
  c.opt.softcap = 30.f;
  c.expect_refused("options.softcap");
  c.opt = {};
  c.opt.backend = Backend::reference;
  c.expect_refused("options.backend");
}

TEST(CudaArgs, RefusesDtypesAndHeadDims) {
  FakeCall c;
  c.q.dtype = DType::f32;
  c.expect_refused("q must be f16 or bf16");
  c = {};
  c.k.dtype = c.v.dtype = DType::f16;
  c.expect_refused("one dtype");
  c = {};
  c.q = View4::dense(FakeCall::buf, DType::bf16, {2, 8, 4, 80});
  c.k = View4::dense(FakeCall::buf, DType::bf16, {2, 16, 2, 80});
  c.v = View4::dense(FakeCall::buf, DType::bf16, {2, 16, 2, 80});
  c.out = OutView4::dense(FakeCall::buf, DType::f32, {2, 8, 4, 80});
  c.expect_refused("head_dim = 80");
  c = {};
  c.v = View4::dense(FakeCall::buf, DType::bf16, {2, 16, 2, 128});
  c.out = OutView4::dense(FakeCall::buf, DType::f32, {2, 8, 4, 128});
  c.expect_refused("head_dim_v = 128");
}

TEST(CudaArgs, RefusesLayoutsTheKernelsCannotLoad) {
  FakeCall c;
  c.k.stride = {16 * 2 * 64, 1, 16, 2 * 16};  // head_dim strided
  c.expect_refused("k.stride[3]");
  c = {};
  c.q.stride[1] = 260;  // rows not 16-byte aligned
  c.expect_refused("q.stride[1]");
  c = {};
  c.v.data = FakeCall::buf + 1;
  c.expect_refused("v.data must be 16-byte aligned");
}

TEST(CudaArgs, SharedChecksComeFromMakeProblem) {
  FakeCall c;
  c.out.shape[1] = 9;
  c.expect_refused("out shape");
  c = {};
  const int32_t lens[2] = {16, 17};
  c.opt.kv_lengths = lens;
  c.expect_refused("kv_lengths[1] = 17");
  c = {};
  c.opt.kv_lengths = std::span(lens, 1);  // batch is 2
  c.expect_refused("kv_lengths has 1 values, expected batch = 2");
  c = {};
  c.k = View4::dense(FakeCall::buf, DType::bf16, {2, 16, 3, 64});
  c.v = View4::dense(FakeCall::buf, DType::bf16, {2, 16, 3, 64});
  c.expect_refused("multiple of n_head_kv");
}

TEST(CudaArgs, OutViewDenseStrides) {
  const auto o = OutView4::dense(nullptr, DType::bf16, {2, 3, 4, 5});
  EXPECT_EQ(o.stride, (std::array<int64_t, 4>{60, 20, 5, 1}));
  EXPECT_EQ(o.dtype, DType::bf16);
}

// ---------------------------------------------------------------- kernels (need a GPU)

#define ASSERT_CUDA(x) ASSERT_EQ((x), cudaSuccess) << #x

struct GpuCase {
  DType dtype = DType::bf16, out_dtype = DType::f32;
  int batch = 2, n_q = 100, n_kv = 150, n_head = 4, n_head_kv = 2, head_dim = 64;
  bool causal = false, kv_lengths = false;
  int force_splits = 0;
  cuda::FlashKernel kernel = cuda::FlashKernel::automatic;
};

// Runs one case on the GPU and compares with the reference on the same rounded inputs.
// Tolerance on ||out - ref|| / ||ref||: the probabilities are rounded to the input dtype before
// P V (2^-9 relative for bf16, 2^-11 for f16, averaging down over keys) and a 16-bit output is
// rounded once more. Largest errors of the device check (bench/gpu/run.sh, H100, 168 cases,
// 2026-11-27): bf16 2.2e-3, f16 2.4e-4; tolerances 1e-2 (bf16) and 2e-3 (f16) leave 4-8x.
// LSE comes from fp32 scores of exact products: largest error 1.4e-6, tolerance 1e-4 absolute.
void run_gpu_case(const GpuCase& c, std::mt19937_64& rng) {
  SCOPED_TRACE(testing::Message() << "d" << c.head_dim << " q" << c.n_q << " kv" << c.n_kv << " h"
                                  << c.n_head << "/" << c.n_head_kv << " causal " << c.causal
                                  << " splits " << c.force_splits);
  auto fill = [&](std::vector<uint16_t>& h, size_t n) {
    std::normal_distribution<float> dist(0.f, 1.f);
    h.resize(n);
    for (auto& e : h) {
      const float x = dist(rng);
      e = c.dtype == DType::bf16 ? core::f32_to_bf16(x) : core::f32_to_f16(x);
    }
  };
  const std::array<int64_t, 4> qs{c.batch, c.n_q, c.n_head, c.head_dim};
  const std::array<int64_t, 4> ks{c.batch, c.n_kv, c.n_head_kv, c.head_dim};
  std::vector<uint16_t> hq, hk, hv;
  fill(hq, static_cast<size_t>(c.batch) * c.n_q * c.n_head * c.head_dim);
  fill(hk, static_cast<size_t>(c.batch) * c.n_kv * c.n_head_kv * c.head_dim);
  fill(hv, hk.size());
  std::vector<int32_t> lens(c.batch);
  for (auto& l : lens) l = static_cast<int32_t>(rng() % (c.n_kv + 1));
  AttentionOptions opt;
  opt.causal = c.causal;
  if (c.kv_lengths) opt.kv_lengths = lens;

  void *dq, *dk, *dv, *dout;
  float* dlse;
  const size_t n_out = hq.size(), n_lse = static_cast<size_t>(c.batch) * c.n_head * c.n_q;
  const int osize = dtype_size(c.out_dtype);
  ASSERT_CUDA(cudaMalloc(&dq, hq.size() * 2));
  ASSERT_CUDA(cudaMalloc(&dk, hk.size() * 2));
  ASSERT_CUDA(cudaMalloc(&dv, hv.size() * 2));
  ASSERT_CUDA(cudaMalloc(&dout, n_out * osize));
  ASSERT_CUDA(cudaMalloc(&dlse, n_lse * 4));
  ASSERT_CUDA(cudaMemcpy(dq, hq.data(), hq.size() * 2, cudaMemcpyHostToDevice));
  ASSERT_CUDA(cudaMemcpy(dk, hk.data(), hk.size() * 2, cudaMemcpyHostToDevice));
  ASSERT_CUDA(cudaMemcpy(dv, hv.data(), hv.size() * 2, cudaMemcpyHostToDevice));
  ASSERT_CUDA(cudaMemset(dout, 0xff, n_out * osize));  // NaN: unwritten elements fail
  ASSERT_CUDA(cudaMemset(dlse, 0xff, n_lse * 4));

  const View4 q = View4::dense(dq, c.dtype, qs), k = View4::dense(dk, c.dtype, ks),
              v = View4::dense(dv, c.dtype, ks);
  const OutView4 out = OutView4::dense(dout, c.out_dtype, qs);
  const auto f = cuda::make_flash_params(q, k, v, out, {dlse, n_lse}, opt);
  cuda::run_flash(f, opt, nullptr, c.force_splits, c.kernel);
  ASSERT_CUDA(cudaDeviceSynchronize());
  std::vector<unsigned char> raw(n_out * osize);
  std::vector<float> lse(n_lse);
  ASSERT_CUDA(cudaMemcpy(raw.data(), dout, raw.size(), cudaMemcpyDeviceToHost));
  ASSERT_CUDA(cudaMemcpy(lse.data(), dlse, n_lse * 4, cudaMemcpyDeviceToHost));
  for (void* p : {dq, dk, dv, dout, static_cast<void*>(dlse)}) cudaFree(p);

  std::vector<float> ref(n_out), ref_lse(n_lse);
  const auto prob = kernels::make_problem(
      View4::dense(hq.data(), c.dtype, qs), View4::dense(hk.data(), c.dtype, ks),
      View4::dense(hv.data(), c.dtype, ks), MutView4::dense(ref.data(), qs), ref_lse, opt, true,
      true);
  kernels::attention_reference(prob);

  double err2 = 0, ref2 = 0;
  for (size_t i = 0; i < n_out; ++i) {
    float x;
    if (c.out_dtype == DType::f32) {
      std::memcpy(&x, raw.data() + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, raw.data() + 2 * i, 2);
      x = c.out_dtype == DType::bf16 ? core::bf16_to_f32(h) : core::f16_to_f32(h);
    }
    ASSERT_TRUE(std::isfinite(x)) << "out[" << i << "] = " << x;
    err2 += (x - ref[i]) * static_cast<double>(x - ref[i]);
    ref2 += ref[i] * static_cast<double>(ref[i]);
  }
  const double tol = c.dtype == DType::bf16 || c.out_dtype == DType::bf16 ? 1e-2 : 2e-3;
  EXPECT_LE(std::sqrt(err2 / std::max(ref2, 1e-30)), tol);
  for (size_t i = 0; i < n_lse; ++i) {
    if (std::isinf(ref_lse[i])) {
      EXPECT_TRUE(std::isinf(lse[i]) && lse[i] < 0) << "lse[" << i << "] = " << lse[i];
    } else {
      EXPECT_NEAR(lse[i], ref_lse[i], 1e-4) << "lse[" << i << "]";
    }
  }
}

class CudaKernel : public testing::Test {
 protected:
  void SetUp() override {
    if (!attention_cuda_available()) GTEST_SKIP() << "no CUDA device with sm_80+ present";
  }
  std::mt19937_64 rng{std::random_device{}()};
};

TEST_F(CudaKernel, PrefillEveryHeadDimAndDtype) {
  for (int d : {64, 96, 128, 256}) {
    for (DType t : {DType::bf16, DType::f16}) {
      for (bool causal : {false, true}) {
        GpuCase c;
        c.head_dim = d;
        c.dtype = t;
        c.out_dtype = t;
        c.causal = causal;
        c.n_q = c.n_kv = 150;
        run_gpu_case(c, rng);
      }
    }
  }
}

TEST_F(CudaKernel, HopperKernelMatchesTheReference) {
  if (!cuda::sm90_device()) GTEST_SKIP() << "the sm90 kernel needs a Hopper GPU";
  for (int d : {64, 128}) {
    for (bool causal : {false, true}) {
      GpuCase c;
      c.kernel = causal ? cuda::FlashKernel::sm90_1wg : cuda::FlashKernel::sm90;
      c.head_dim = d;
      c.causal = causal;
      c.n_q = 300;   // 3 blocks of 128 rows, the last partial
      c.n_kv = 290;  // 3 tiles of 128 keys, the last partial
      c.kv_lengths = causal;
      run_gpu_case(c, rng);
    }
  }
}

TEST_F(CudaKernel, DecodeWithSplitsAndRaggedLengths) {
  for (int splits : {0, 1, 4}) {
    GpuCase c;
    c.n_q = 1;
    c.n_kv = 2000;
    c.n_head = 8;
    c.n_head_kv = 2;
    c.head_dim = 128;
    c.force_splits = splits;
    c.kv_lengths = splits == 4;
    run_gpu_case(c, rng);
  }
}

TEST_F(CudaKernel, MqaCausalWithMoreQueriesThanKeys) {
  GpuCase c;
  c.n_head = 6;
  c.n_head_kv = 1;
  c.n_q = 200;
  c.n_kv = 120;
  c.causal = true;  // bottom-right alignment: the first 80 queries see no key
  run_gpu_case(c, rng);
}

}  // namespace
}  // namespace qkv
