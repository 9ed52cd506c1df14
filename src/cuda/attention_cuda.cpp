// The CUDA attention front end: checks the call (through make_problem plus the CUDA backend's
// own limits), plans the launch and runs the kernels. Every check comes before the first CUDA
// call, so a refused call never touches the device.
#include "qkv/attention_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "cuda/attention_cuda_impl.h"
#include "cuda/flash_params.h"
#include "kernels/attention_problem.h"

namespace qkv {

OutView4 OutView4::dense(void* data, DType dtype, std::array<int64_t, 4> shape) {
  return {data, dtype, shape, dense_strides(shape)};
}

namespace cuda {
namespace {

using core::throw_error;
using core::throw_invalid;

int ceil_div(int64_t a, int64_t b) {
  return static_cast<int>((a + b - 1) / b);
}

void check_input(const char* name, const View4& t) {
  if (t.stride[3] != 1) {
    throw_invalid("attention_cuda: ", name, ".stride[3] = ", t.stride[3],
                  " but head_dim must be contiguous (stride 1): the kernels load 16-byte vectors");
  }
  for (int d = 0; d < 3; ++d) {
    if (t.stride[d] % 8 != 0) {
      throw_invalid("attention_cuda: ", name, ".stride[", d, "] = ", t.stride[d],
                    " must be a multiple of 8 elements (16-byte aligned rows)");
    }
  }
  if (reinterpret_cast<uintptr_t>(t.data) % 16 != 0) {
    throw_invalid("attention_cuda: ", name, ".data must be 16-byte aligned");
  }
}

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw_error("attention_cuda: ", what, ": ", cudaGetErrorString(e));
}

struct DeviceInfo {
  int n_sms = 0;
  bool sm90 = false;  // compute capability 9.0: the sm_90a code (wgmma) runs
};

DeviceInfo device_info() {
  int dev = 0, n = 0, major = 0, minor = 0;
  check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev),
             "cudaDeviceGetAttribute(MultiProcessorCount)");
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev),
             "cudaDeviceGetAttribute(ComputeCapabilityMajor)");
  check_cuda(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev),
             "cudaDeviceGetAttribute(ComputeCapabilityMinor)");
  return {n, major == 9 && minor == 0};
}

}  // namespace

bool sm90_device() {
  return device_info().sm90;
}

LaunchPlan plan_launch(int64_t batch, int64_t n_head_kv, int64_t n_rows, int64_t n_kv, int head_dim,
                       int n_sms, int force_splits, bool sm90, FlashKernel kernel) {
  LaunchPlan plan;
  // The wgmma kernel has 128-row blocks: it serves prefill (more than 64 rows); decode-like
  // problems stay on the one-m-tile mma kernel, whose 64-row blocks waste less.
  const bool sm90_ok = sm90 && (head_dim == 64 || head_dim == 128);
  const bool forced_sm90 = kernel == FlashKernel::sm90 || kernel == FlashKernel::sm90_1wg;
  if (forced_sm90 && !sm90_ok) {
    throw_invalid("attention_cuda: the sm90 kernel needs a Hopper GPU and head_dim 64 or 128");
  }
  const bool use_sm90 =
      forced_sm90 || (kernel == FlashKernel::automatic && sm90_ok && n_rows > block_m(1));
  int bm, bn;
  if (use_sm90) {
    // Automatic: two warpgroups and 128 x 128 tiles at head_dim 128, one warpgroup and 64 x 64
    // tiles (two blocks per multiprocessor) at head_dim 64. H100, bf16, batch 4 x 32 heads x
    // 4096 (docs/PERFORMANCE.md): 351 vs 320 TFLOP/s at 128, 224 vs 259 at 64.
    if (kernel == FlashKernel::automatic) {
      plan.kernel = head_dim == 64 ? FlashKernel::sm90_1wg : FlashKernel::sm90;
    } else {
      plan.kernel = kernel;
    }
    plan.m_tiles = 0;
    bm = plan.kernel == FlashKernel::sm90 ? kSm90BlockM : 64;
    bn = plan.kernel == FlashKernel::sm90 ? kSm90BlockN : 64;
  } else {
    // Two 16-row tiles per warp reuse each K/V fragment twice (half the shared-memory traffic
    // per product); head_dim 256 keeps one (its fp32 output accumulator alone is 128 registers),
    // and so do problems of at most 64 rows (decode), where a 128-row block would be mostly
    // padding.
    plan.kernel = FlashKernel::mma;
    plan.m_tiles = (head_dim == 256 || n_rows <= block_m(1)) ? 1 : 2;
    bm = block_m(plan.m_tiles);
    bn = kBlockN;
  }
  plan.m_blocks = ceil_div(n_rows, bm);
  const int n_tiles = std::max(1, ceil_div(n_kv, bn));
  const int64_t blocks = static_cast<int64_t>(plan.m_blocks) * batch * n_head_kv;
  int splits = 1;
  if (force_splits > 0) {
    splits = force_splits;
  } else if (blocks < n_sms) {
    // Under one wave of blocks (decode, small batch): split the keys so that about four blocks
    // run per multiprocessor (a one-m-tile block needs 52 KB of shared memory at head_dim 128),
    // each keeping at least 4 tiles so that the merge stays cheap. Measured on an H100 at batch
    // 16 x 32k keys, 8 KV heads (docs/PERFORMANCE.md): 2 to 16 splits within 8% of each other
    // (this rule picks 5; 2 was fastest), 1 split 30% slower.
    const int want = ceil_div(4 * static_cast<int64_t>(n_sms), std::max<int64_t>(blocks, 1));
    splits = std::clamp(std::min(want, n_tiles / 4), 1, 64);
  }
  splits = std::clamp(splits, 1, n_tiles);
  plan.tiles_per_split = ceil_div(n_tiles, splits);
  plan.n_splits = ceil_div(n_tiles, plan.tiles_per_split);  // no empty trailing split
  return plan;
}

FlashParams make_flash_params(const View4& q, const View4& k, const View4& v, const OutView4& out,
                              std::span<float> lse, const AttentionOptions& opt) {
  const auto& o = opt;
  if (o.mask.kind != MaskKind::none) {
    throw_invalid(
        "attention_cuda: options.mask (explicit masks) is not supported on CUDA; use "
        "causal, kv_lengths, q_offsets and window, or the CPU backend");
  }
  if (!o.alibi_slopes.empty()) {
    throw_invalid("attention_cuda: options.alibi_slopes (ALiBi) is not supported on CUDA");
  }
  if (o.softcap != 0.f) {
    throw_invalid("attention_cuda: options.softcap = ", o.softcap,
                  " is not supported on CUDA (0 = off)");
  }
  if (o.backend != Backend::automatic) {
    throw_invalid(
        "attention_cuda: options.backend selects a CPU backend; leave it automatic "
        "for attention_cuda");
  }
  if (q.dtype != DType::f16 && q.dtype != DType::bf16) {
    throw_invalid("attention_cuda: q must be f16 or bf16, got ", dtype_name(q.dtype));
  }
  if (k.dtype != q.dtype || v.dtype != q.dtype) {
    throw_invalid("attention_cuda: q, k and v must have one dtype, got q ", dtype_name(q.dtype),
                  ", k ", dtype_name(k.dtype), ", v ", dtype_name(v.dtype));
  }
  // make_problem checks shapes, heads, options; its out check needs only shape and non-null data.
  MutView4 out_shape{static_cast<float*>(out.data), out.shape, out.stride};
  const kernels::AttentionProblem p =
      kernels::make_problem(q, k, v, out_shape, lse, opt, /*need_out=*/true, /*any_q_dtype=*/true);
  if (p.head_dim != 64 && p.head_dim != 96 && p.head_dim != 128 && p.head_dim != 256) {
    throw_invalid("attention_cuda: head_dim = ", p.head_dim,
                  " is not supported (64, 96, 128, 256)");
  }
  if (p.head_dim_v != p.head_dim) {
    throw_invalid("attention_cuda: head_dim_v = ", p.head_dim_v,
                  " must equal head_dim = ", p.head_dim);
  }
  for (int d = 0; d < 4; ++d) {
    if (out.stride[d] < 0) {
      throw_invalid("attention_cuda: out.stride[", d, "] = ", out.stride[d], " is negative");
    }
  }
  check_input("q", q);
  check_input("k", k);
  check_input("v", v);
  const int64_t n_rows = p.n_q * p.group;
  if (n_rows > (int64_t{1} << 30) || p.n_kv > (int64_t{1} << 30)) {
    throw_invalid("attention_cuda: n_q * group = ", n_rows, " and n_kv = ", p.n_kv,
                  " must each be below 2^30");
  }
  if (p.batch * p.n_head_kv > 65535) {
    throw_invalid("attention_cuda: batch * n_head_kv = ", p.batch * p.n_head_kv,
                  " exceeds the grid limit 65535");
  }

  FlashParams f;
  f.q = q.data;
  f.k = k.data;
  f.v = v.data;
  for (int d = 0; d < 3; ++d) {
    f.q_stride[d] = q.stride[d];
    f.k_stride[d] = k.stride[d];
    f.v_stride[d] = v.stride[d];
  }
  f.out = out.data;
  for (int d = 0; d < 4; ++d) f.o_stride[d] = out.stride[d];
  f.out_dtype = out.dtype == DType::f32 ? 0 : out.dtype == DType::f16 ? 1 : 2;
  f.lse = lse.empty() ? nullptr : lse.data();
  f.batch = static_cast<int>(p.batch);
  f.n_q = static_cast<int>(p.n_q);
  f.n_kv = static_cast<int>(p.n_kv);
  f.n_head = static_cast<int>(p.n_head);
  f.n_head_kv = static_cast<int>(p.n_head_kv);
  f.group = static_cast<int>(p.group);
  f.head_dim = static_cast<int>(p.head_dim);
  f.n_rows = static_cast<int>(n_rows);
  f.scale_log2 = static_cast<float>(p.scale * 1.4426950408889634);
  f.causal = o.causal;
  f.window_left = o.window_left;
  f.window_right = o.window_right;
  f.bf16 = q.dtype == DType::bf16;
  return f;
}

void run_flash(FlashParams f, const AttentionOptions& opt, void* stream, int force_splits,
               FlashKernel kernel) {
  if (f.n_q == 0 || f.batch == 0 || f.n_head == 0) return;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const DeviceInfo dev = device_info();
  const LaunchPlan plan = plan_launch(f.batch, f.n_head_kv, f.n_rows, f.n_kv, f.head_dim, dev.n_sms,
                                      force_splits, dev.sm90, kernel);

  // Stream-ordered scratch: seq_info [batch][2] and the split partials, one allocation.
  const bool need_seq = !opt.kv_lengths.empty() || !opt.q_offsets.empty();
  const size_t seq_bytes = need_seq ? sizeof(int32_t) * 2 * f.batch : 0;
  const size_t seq_pad = (seq_bytes + 255) / 256 * 256;
  const int64_t rows_all = static_cast<int64_t>(f.batch) * f.n_head_kv * f.n_rows;
  const size_t lse_bytes = plan.n_splits > 1 ? sizeof(float) * plan.n_splits * rows_all : 0;
  const size_t lse_pad = (lse_bytes + 255) / 256 * 256;
  const size_t o_bytes =
      plan.n_splits > 1 ? sizeof(float) * plan.n_splits * rows_all * f.head_dim : 0;
  const size_t total = seq_pad + lse_pad + o_bytes;
  void* scratch = nullptr;
  if (total > 0) check_cuda(cudaMallocAsync(&scratch, total, s), "cudaMallocAsync");
  char* base = static_cast<char*>(scratch);
  try {
    if (need_seq) {
      std::vector<int32_t> info(2 * static_cast<size_t>(f.batch));
      for (int b = 0; b < f.batch; ++b) {
        info[2 * b] = opt.q_offsets.empty() ? f.n_kv - f.n_q : opt.q_offsets[b];
        info[2 * b + 1] = opt.kv_lengths.empty() ? f.n_kv : opt.kv_lengths[b];
      }
      // From pageable memory: staged before the call returns, so `info` may go out of scope.
      check_cuda(cudaMemcpyAsync(base, info.data(), seq_bytes, cudaMemcpyHostToDevice, s),
                 "cudaMemcpyAsync(seq_info)");
      f.seq_info = reinterpret_cast<const int32_t*>(base);
    }
    f.n_splits = plan.n_splits;
    f.tiles_per_split = plan.tiles_per_split;
    if (plan.n_splits > 1) {
      f.lse_partial = reinterpret_cast<float*>(base + seq_pad);
      f.o_partial = reinterpret_cast<float*>(base + seq_pad + lse_pad);
    }
    if (plan.kernel == FlashKernel::sm90 || plan.kernel == FlashKernel::sm90_1wg) {
      if (f.head_dim == 64) {
        flash_fwd_sm90_hdim64(f, plan, s);
      } else {
        flash_fwd_sm90_hdim128(f, plan, s);
      }
    } else if (f.head_dim == 64) {
      flash_fwd_hdim64(f, plan, s);
    } else if (f.head_dim == 96) {
      flash_fwd_hdim96(f, plan, s);
    } else if (f.head_dim == 128) {
      flash_fwd_hdim128(f, plan, s);
    } else {
      flash_fwd_hdim256(f, plan, s);
    }
    check_cuda(cudaGetLastError(), "flash_fwd launch");
    if (plan.n_splits > 1) {
      flash_merge(f, s);
      check_cuda(cudaGetLastError(), "flash_merge launch");
    }
  } catch (...) {
    if (scratch) cudaFreeAsync(scratch, s);
    throw;
  }
  if (scratch) check_cuda(cudaFreeAsync(scratch, s), "cudaFreeAsync");
}

}  // namespace cuda

void attention_cuda(const View4& q, const View4& k, const View4& v, const OutView4& out,
                    std::span<float> lse, const AttentionOptions& options, void* stream) {
  const cuda::FlashParams f = cuda::make_flash_params(q, k, v, out, lse, options);
  cuda::run_flash(f, options, stream, 0, cuda::FlashKernel::automatic);
}

bool attention_cuda_available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    cudaGetLastError();
    return false;
  }
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return major >= 8 && cuda::flash_kernels_loadable();
}

}  // namespace qkv
