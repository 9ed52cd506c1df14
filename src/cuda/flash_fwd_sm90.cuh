// Hopper (sm_90a) forward kernel: the online-softmax loop of flash_fwd.cuh with its products on
// wgmma. kWG warpgroups per block, 64 query rows each, key tiles of kBN (<2, 128> by default,
// <1, 64> at head_dim 64; see plan_launch).
//   S = Q K^T   wgmma m64nBNk16, A (Q) and B (K) from shared memory, both K-major
//   O += P V    wgmma m64nDk16, A = P from registers (same layout as the S accumulator, packed
//               to 16 bits), B (V) from shared memory MN-major (transposed by the instruction)
// Tiles use the 128-byte swizzle that the wgmma descriptors describe: a tile of R rows x D
// elements is stored as D / 64 blocks of [R][64], and in each 8-row x 128-byte atom the 16-byte
// chunk c of row r sits at chunk c ^ (r % 8). cp.async writes them in that order.
// K and V have two shared-memory stages, loaded one iteration ahead; within an iteration the
// softmax of tile t runs while the tensor cores compute P V of tile t - 1 (FlashAttention-3's
// intra-warpgroup overlap). No TMA, no producer warps and no warpgroup ping-pong yet.
#pragma once

#include "cuda/flash_fwd.cuh"
#include "cuda/flash_wgmma.cuh"

namespace qkv::cuda {

// Block shapes: kWG warpgroups of 64 rows, kBN keys per tile. <2, 128> (one block per SM) and
// <1, 64> (two blocks per SM, which then overlap each other's softmax and products).
template <int D, int kWG, int kBN>
constexpr int sm90_smem_bytes() {
  // Q, two stages of K and V, and slack to align the 1024-byte swizzle atoms.
  return (64 * kWG + 4 * kBN) * D * 2 + 1024;
}

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define QKV_SM90_DEVICE 1
#endif

#ifdef QKV_SM90_DEVICE
// Shared-memory matrix descriptor, 128-byte swizzle. Offsets in bytes.
__device__ __forceinline__ uint64_t smem_desc(const void* smem, uint32_t lbo, uint32_t sbo) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  uint64_t d = (addr & 0x3ffffu) >> 4;
  d |= static_cast<uint64_t>((lbo >> 4) & 0x3fffu) << 16;
  d |= static_cast<uint64_t>((sbo >> 4) & 0x3fffu) << 32;
  d |= uint64_t{1} << 62;  // SWIZZLE_128B
  return d;
}
__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accumulator registers across the asynchronous products.
template <int N>
__device__ __forceinline__ void fence_operands(float (&d)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[j][e])::"memory");
  }
}
template <int N>
__device__ __forceinline__ void fence_operands(uint32_t (&a)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(a[j][e])::"memory");
  }
}
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

template <typename T, int N>
__device__ __forceinline__ void wgmma_s(float (&d)[N / 8][4], uint64_t a, uint64_t b, int scale_d) {
  if constexpr (N == 128) {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      wgmma_m64n128k16_ss_bf16(d, a, b, scale_d);
    } else {
      wgmma_m64n128k16_ss_f16(d, a, b, scale_d);
    }
  } else {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      wgmma_m64n64k16_ss_bf16(d, a, b, scale_d);
    } else {
      wgmma_m64n64k16_ss_f16(d, a, b, scale_d);
    }
  }
}
template <typename T, int D>
__device__ __forceinline__ void wgmma_o(float (&d)[D / 8][4], const uint32_t (&a)[4], uint64_t b) {
  if constexpr (D == 128) {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      wgmma_m64n128k16_rs_bf16(d, a, b);
    } else {
      wgmma_m64n128k16_rs_f16(d, a, b);
    }
  } else {
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      wgmma_m64n64k16_rs_bf16(d, a, b);
    } else {
      wgmma_m64n64k16_rs_f16(d, a, b);
    }
  }
}

// Copies `rows` rows of D elements into the swizzled layout; null rows are zero-filled.
template <int D, int kThreads, typename T, typename RowPtr>
__device__ __forceinline__ void load_tile_sw128(T* smem, int rows, RowPtr src_row,
                                                const T* fallback) {
  constexpr int kChunks = D / 8;
  for (int idx = threadIdx.x; idx < rows * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = idx % kChunks;
    const T* src = src_row(r);
    T* dst = smem + (c / 8) * rows * 64 + r * 64 + ((c % 8) ^ (r % 8)) * 8;
    cp_async_16(dst, src ? src + c * 8 : fallback, src != nullptr);
  }
}
#endif

template <typename T, int D, int kWG, int kBN>
__global__ void __launch_bounds__(128 * kWG, kWG == 1 ? 2 : 1)
    flash_fwd_sm90_kernel(const __grid_constant__ FlashParams p) {
#ifdef QKV_SM90_DEVICE
  static_assert(D == 64 || D == 128, "the sm90 kernel covers head_dim 64 and 128");
  constexpr int kBM = 64 * kWG, kThreads = 128 * kWG;
  constexpr int kNT = kBN / 8, kDT = D / 8;
  extern __shared__ unsigned char smem_raw[];
  // The swizzle atoms must be 1024-byte aligned in the shared window.
  const uint32_t raw_addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem_raw));
  T* q_s = reinterpret_cast<T*>(smem_raw + ((1024 - raw_addr % 1024) % 1024));  // [D/64][kBM][64]
  T* k_s = q_s + kBM * D;      // [2][D/64][kBN][64]
  T* v_s = k_s + 2 * kBN * D;  // [2][D/64][kBN][64]

  const int m_block = gridDim.x - 1 - blockIdx.x;
  const int bh = blockIdx.y;
  const int b = bh / p.n_head_kv, hk = bh % p.n_head_kv;
  const int split = blockIdx.z;
  const int wg = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const int row0 = m_block * kBM;
  const int rows_here = min(kBM, p.n_rows - row0);

  const SeqInfo si = seq_info(p, b);
  int64_t lo_first, hi_first, lo_last, hi_last;
  row_key_range(p, si, row0, &lo_first, &hi_first);
  row_key_range(p, si, row0 + rows_here - 1, &lo_last, &hi_last);
  const int64_t kv_lo = lo_first, kv_hi = hi_last;
  int t_begin = 0, t_end = 0;
  if (kv_hi > kv_lo) {
    t_begin = static_cast<int>(kv_lo / kBN);
    t_end = static_cast<int>((kv_hi + kBN - 1) / kBN);
  }
  if (p.n_splits > 1) {
    t_begin = max(t_begin, split * p.tiles_per_split);
    t_end = min(t_end, (split + 1) * p.tiles_per_split);
  }

  const T* q_base = static_cast<const T*>(p.q) + b * p.q_stride[0];
  const T* k_base = static_cast<const T*>(p.k) + b * p.k_stride[0] + hk * p.k_stride[2];
  const T* v_base = static_cast<const T*>(p.v) + b * p.v_stride[0] + hk * p.v_stride[2];
  auto q_row = [&](int r) -> const T* {
    const int rr = row0 + r;
    if (rr >= p.n_rows) return nullptr;
    return q_base + (rr / p.group) * p.q_stride[1] + (hk * p.group + rr % p.group) * p.q_stride[2];
  };

  // This thread's rows: h = 0, 1 -> block row wg * 64 + warp * 16 + lane / 4 + 8 * h.
  float o_acc[kDT][4];
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};
#pragma unroll
  for (int dt = 0; dt < kDT; ++dt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) o_acc[dt][e] = 0.f;
  }

  if (t_begin < t_end) {
    // Two stages of K and V: stage(x) = (x - t_begin) % 2. Iteration t reads K(t) and V(t - 1);
    // at its end it loads K(t + 2) and V(t + 1), one full iteration before they are read.
    auto k_stage = [&](int x) { return k_s + ((x - t_begin) & 1) * kBN * D; };
    auto v_stage = [&](int x) { return v_s + ((x - t_begin) & 1) * kBN * D; };
    // K/V tile loads with addresses fixed per thread: thread tid copies chunk ld_c of rows
    // ld_r + i * kRowsPerPass, so the swizzled destination of pass i is ld_dst + i * (a constant)
    // and the source moves by kRowsPerPass rows (generic index arithmetic per copy cost ~20% of
    // the instructions of a tile, measured with ncu on an H100).
    constexpr int kC = D / 8, kRowsPerPass = kThreads / kC, kPasses = kBN / kRowsPerPass;
    static_assert(kRowsPerPass % 8 == 0 && kBN % kRowsPerPass == 0, "load pattern");
    const int ld_c = threadIdx.x % kC, ld_r = threadIdx.x / kC;
    const int ld_dst = (ld_c / 8) * kBN * 64 + ld_r * 64 + ((ld_c % 8) ^ (ld_r % 8)) * 8;
    auto load_kv = [&](T* stage, const T* base, int64_t stride, int x) {
      const int64_t j = static_cast<int64_t>(x) * kBN + ld_r;
      const T* src = base + j * stride + ld_c * 8;
#pragma unroll
      for (int i = 0; i < kPasses; ++i) {
        const bool ok = j + i * kRowsPerPass < kv_hi;
        cp_async_16(stage + ld_dst + i * kRowsPerPass * 64,
                    ok ? src + i * kRowsPerPass * stride : base, ok);
      }
    };
    auto load_k = [&](int x) {
      if (x < t_end) load_kv(k_stage(x), k_base, p.k_stride[1], x);
    };
    auto load_v = [&](int x) {
      if (x < t_end) load_kv(v_stage(x), v_base, p.v_stride[1], x);
    };
    // Descriptors: one per tile, plus compile-time offsets (in 16-byte units; the address field
    // cannot carry over since shared memory is below 256 KB).
    const uint64_t q_desc = smem_desc(q_s + wg * 64 * 64, 16, 1024);
    auto issue_s = [&](float(&s)[kNT][4], int x) {  // s = Q K(x)^T, asynchronous
      const uint64_t k_desc = smem_desc(k_stage(x), 16, 1024);
      fence_operands(s);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        // K-major operands: a 16-wide k step is a 32-byte advance inside the 128-byte atom.
        const uint64_t da = q_desc + (((kk / 4) * kBM * 64 + (kk % 4) * 16) * 2 >> 4);
        const uint64_t db = k_desc + (((kk / 4) * kBN * 64 + (kk % 4) * 16) * 2 >> 4);
        wgmma_s<T, kBN>(s, da, db, kk > 0 ? 1 : 0);
      }
      wgmma_commit();
    };
    auto issue_pv = [&](const uint32_t(&pa)[kBN / 16][4], int x) {  // O += P V(x), asynchronous
      // MN-major V: 8-key groups 1024 bytes apart (SBO), 64-dim blocks kBN * 128 bytes (LBO).
      const uint64_t v_desc = smem_desc(v_stage(x), kBN * 128, 1024);
      fence_operands(o_acc);
      wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < kBN / 16; ++ks) {
        wgmma_o<T, D>(o_acc, pa[ks], v_desc + ((ks * 16 * 64) * 2 >> 4));
      }
      wgmma_commit();
    };
    // Softmax of tile x, in place: s -> P (fp32), row statistics; returns the rescale factors.
    auto softmax_tile = [&](float(&s)[kNT][4], int x, float(&alpha)[2]) {
      const int j0 = x * kBN;
      const bool need_mask = !(j0 >= lo_last && j0 + kBN <= hi_first);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        int64_t lo = 0, hi = 0;
        if (need_mask) {
          const int r = row0 + wg * 64 + warp * 16 + lane / 4 + 8 * h;
          row_key_range(p, si, min(r, p.n_rows - 1), &lo, &hi);
        }
        alpha[h] =
            softmax_update(s, h, row_max[h], row_sum[h], p.scale_log2, need_mask, lo, hi, j0, lane);
      }
    };
    // P as A fragments of the P V product (16-bit pairs in the m16n8k16 A layout).
    auto pack_p = [&](const float(&s)[kNT][4], uint32_t(&pa)[kBN / 16][4]) {
#pragma unroll
      for (int ks = 0; ks < kBN / 16; ++ks) {
        pa[ks][0] = MmaType<T>::pack(s[2 * ks][0], s[2 * ks][1]);
        pa[ks][1] = MmaType<T>::pack(s[2 * ks][2], s[2 * ks][3]);
        pa[ks][2] = MmaType<T>::pack(s[2 * ks + 1][0], s[2 * ks + 1][1]);
        pa[ks][3] = MmaType<T>::pack(s[2 * ks + 1][2], s[2 * ks + 1][3]);
      }
    };

    load_tile_sw128<D, kThreads>(q_s, kBM, q_row, q_base);
    load_k(t_begin);
    cp_async_commit();
    load_v(t_begin);
    load_k(t_begin + 1);
    cp_async_commit();
    cp_async_wait_one();  // Q and K(t_begin)
    fence_proxy_async();  // cp.async wrote through the generic proxy; wgmma reads via async
    __syncthreads();

    float s[kNT][4];
    uint32_t pa[kBN / 16][4];  // P of the tile whose P V is next
    float alpha[2];
    issue_s(s, t_begin);
    wgmma_wait<0>();
    fence_operands(s);
    softmax_tile(s, t_begin, alpha);  // O is still zero: no rescale
    pack_p(s, pa);
    __syncthreads();  // every warpgroup is done with K(t_begin)
    load_k(t_begin + 2);
    load_v(t_begin + 1);
    cp_async_commit();

    // FlashAttention-3's intra-warpgroup overlap: the softmax of tile t runs while the tensor
    // cores compute P V of tile t - 1.
    for (int t = t_begin + 1; t < t_end; ++t) {
      cp_async_wait_one();  // K(t), V(t - 1); the group just issued may still run
      fence_proxy_async();
      __syncthreads();
      issue_s(s, t);
      issue_pv(pa, t - 1);
      wgmma_wait<1>();  // s ready; P V still running
      fence_operands(s);
      // Only s (whose product has retired) is written while P V runs: writing the next P into
      // registers would let them alias the ones P V is reading, and ptxas then serialises the
      // wgmmas (warning C7513). P is packed after the wait, as in FlashAttention-3.
      softmax_tile(s, t, alpha);
      wgmma_wait<0>();
      fence_operands(o_acc);
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        o_acc[dt][0] *= alpha[0];
        o_acc[dt][1] *= alpha[0];
        o_acc[dt][2] *= alpha[1];
        o_acc[dt][3] *= alpha[1];
      }
      pack_p(s, pa);
      __syncthreads();  // every warpgroup is done with K(t) and V(t - 1)
      load_k(t + 2);
      load_v(t + 1);
      cp_async_commit();
    }
    cp_async_wait_all();  // V(t_end - 1)
    fence_proxy_async();
    __syncthreads();
    issue_pv(pa, t_end - 1);
    wgmma_wait<0>();
    fence_operands(o_acc);
  }
  constexpr float kLn2 = 0.6931471805599453f;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float l = row_sum[h];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int r = row0 + wg * 64 + warp * 16 + lane / 4 + 8 * h;
    if (r >= p.n_rows) continue;
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const float lse = l > 0.f ? (row_max[h] + __log2f(l)) * kLn2 : -INFINITY;
    const int i = r / p.group, head = hk * p.group + r % p.group;
    if (p.n_splits > 1) {
      const int64_t prow =
          (static_cast<int64_t>(split) * p.batch * p.n_head_kv + bh) * p.n_rows + r;
      float* o = p.o_partial + prow * D;
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        const int c = dt * 8 + 2 * (lane % 4);
        *reinterpret_cast<float2*>(o + c) =
            make_float2(o_acc[dt][2 * h] * inv, o_acc[dt][2 * h + 1] * inv);
      }
      if (lane % 4 == 0) p.lse_partial[prow] = lse;
    } else {
      const int64_t base = b * p.o_stride[0] + i * p.o_stride[1] + head * p.o_stride[2];
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        const int c = dt * 8 + 2 * (lane % 4);
        store_out(p.out, p.out_dtype, base + c * p.o_stride[3], o_acc[dt][2 * h] * inv);
        store_out(p.out, p.out_dtype, base + (c + 1) * p.o_stride[3], o_acc[dt][2 * h + 1] * inv);
      }
      if (p.lse && lane % 4 == 0) {
        p.lse[(static_cast<int64_t>(b) * p.n_head + head) * p.n_q + i] = lse;
      }
    }
  }
#endif
}

template <typename T, int D, int kWG, int kBN>
void launch_flash_fwd_sm90(const FlashParams& p, const LaunchPlan& plan, cudaStream_t stream) {
  auto kernel = flash_fwd_sm90_kernel<T, D, kWG, kBN>;
  constexpr int kSmem = sm90_smem_bytes<D, kWG, kBN>();
  // Per launch, not once: the limit is per device, and the call costs about a microsecond.
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  const dim3 grid(plan.m_blocks, p.batch * p.n_head_kv, plan.n_splits);
  kernel<<<grid, 128 * kWG, kSmem, stream>>>(p);
}

template <typename T, int D>
void launch_flash_fwd_sm90(const FlashParams& p, const LaunchPlan& plan, cudaStream_t stream) {
  if (plan.kernel == FlashKernel::sm90_1wg) {
    launch_flash_fwd_sm90<T, D, 1, 64>(p, plan, stream);
  } else {
    launch_flash_fwd_sm90<T, D, 2, 128>(p, plan, stream);
  }
}

}  // namespace qkv::cuda
