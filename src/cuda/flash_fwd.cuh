// FlashAttention-2-style forward kernel for sm_80+: mma.sync m16n8k16 (f16/bf16 in, fp32
// accumulate), tiles staged in shared memory by cp.async, fragments read with ldmatrix, online
// softmax in registers. Included by one flash_fwd_hdim*.cu per head_dim.
//
// Block: kWarps warps; warp w owns query rows [w * 16 * MT, (w + 1) * 16 * MT) of the block's
// kBM rows. Per key tile of kBlockN keys:
//   S = Q K^T        (Q fragments from smem, K fragments with ldmatrix, fp32 accumulators)
//   P = exp2(S * scale * log2e - m), m the running row max; O = O * exp2(m_old - m) + P V
// P stays in registers: the m16n8 accumulator layout of two adjacent key n-tiles is exactly the
// A-operand layout of an m16n8k16 product over those 16 keys.
//
// Pipeline (as in FlashAttention-2), one K and one V buffer: while S = Q K^T runs, V of the same
// tile loads; while O += P V runs, K of the next tile loads.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/flash_params.h"

namespace qkv::cuda {

template <typename T>
struct MmaType;
template <>
struct MmaType<__half> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
};
template <>
struct MmaType<__nv_bfloat16> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
};

__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1, __half) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1, __nv_bfloat16) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// 16-byte global -> shared copy; zero-fills when !valid (rows past the end, so that padding can
// never inject NaN into P V through 0 * NaN).
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const int src_size = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(gmem),
               "r"(src_size));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n");
}
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_group 0;\n");
}
// Waits for all but the most recently committed group.
__device__ __forceinline__ void cp_async_wait_one() {
  asm volatile("cp.async.wait_group 1;\n");
}

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Position of query 0 and number of keys of sequence b (attention.h, "Query positions").
struct SeqInfo {
  int64_t pos0;
  int64_t kv_len;
};
__device__ __forceinline__ SeqInfo seq_info(const FlashParams& p, int b) {
  if (p.seq_info) return {p.seq_info[2 * b], p.seq_info[2 * b + 1]};
  return {static_cast<int64_t>(p.n_kv) - p.n_q, p.n_kv};
}

// Allowed keys [lo, hi) of packed row r (AttentionProblem::key_range on the device).
__device__ __forceinline__ void row_key_range(const FlashParams& p, SeqInfo s, int r, int64_t* lo,
                                              int64_t* hi) {
  const int64_t pos = s.pos0 + r / p.group;
  int64_t l = 0, h = s.kv_len;
  if (p.causal && pos + 1 < h) h = pos + 1;
  if (p.window_left >= 0 && pos - p.window_left > l) l = pos - p.window_left;
  if (p.window_right >= 0 && pos + p.window_right + 1 < h) h = pos + p.window_right + 1;
  *lo = l;
  *hi = h;
}

__device__ __forceinline__ void store_out(void* out, int dtype, int64_t off, float x) {
  if (dtype == 0) {
    static_cast<float*>(out)[off] = x;
  } else if (dtype == 1) {
    static_cast<__half*>(out)[off] = __float2half_rn(x);
  } else {
    static_cast<__nv_bfloat16*>(out)[off] = __float2bfloat16_rn(x);
  }
}

// Online softmax step for one row of a quad of lanes (the m16n8 accumulator layout: a lane holds
// 2 adjacent keys of each 8-key chunk; h = 0 for row lane / 4, 1 for row lane / 4 + 8). Replaces
// the raw scores s[.][2h], s[.][2h+1] by p = exp2(s * scale_log2 - m), updates the running max m
// (kept scaled) and sum, and returns the factor that rescales the output accumulator.
template <int kNT>
__device__ __forceinline__ float softmax_update(float (&s)[kNT][4], int h, float& row_max,
                                                float& row_sum, float scale_log2, bool need_mask,
                                                int64_t lo, int64_t hi, int j0, int lane) {
  // Four independent partial maxima and sums: a single running value would be a serial chain
  // of 2 * kNT dependent instructions (ncu showed 40% of stalls on fixed-latency dependencies).
  float mp[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};  // raw units: scale > 0, so the
                                                               // max commutes with scaling
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      if (need_mask) {
        const int64_t j = j0 + nt * 8 + 2 * (lane % 4) + e;
        if (j < lo || j >= hi) s[nt][2 * h + e] = -INFINITY;
      }
      mp[(2 * nt + e) % 4] = fmaxf(mp[(2 * nt + e) % 4], s[nt][2 * h + e]);
    }
  }
  float mx = fmaxf(fmaxf(mp[0], mp[1]), fmaxf(mp[2], mp[3]));
  // The 4 lanes of a quad hold the same row.
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
  const float m_new = fmaxf(row_max, mx * scale_log2);
  // If the max is -inf every key so far was masked; subtract 0 instead of -inf so that
  // exp2(-inf - -inf) never makes a NaN (all p are then exactly 0).
  const float m_use = m_new == -INFINITY ? 0.f : m_new;
  const float alpha = fast_exp2(row_max - m_use);
  row_max = m_new;
  float sp[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      // One FFMA per score: exp2(s * scale_log2 - m).
      const float pe = fast_exp2(fmaf(s[nt][2 * h + e], scale_log2, -m_use));
      s[nt][2 * h + e] = pe;
      sp[(2 * nt + e) % 4] += pe;
    }
  }
  const float sum = (sp[0] + sp[1]) + (sp[2] + sp[3]);
  row_sum = row_sum * alpha + sum;
  return alpha;
}

template <typename T, int D, int MT>
struct FlashTraits {
  static constexpr int kBM = block_m(MT);
  static constexpr int kStride = D + 8;  // padded row (elements): 16-byte shift per row keeps
                                         // ldmatrix's 8 row reads on distinct banks
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kSmemBytes = (kBM + 2 * kBlockN) * kStride * static_cast<int>(sizeof(T));
};

// Copies `rows` rows of D elements (row i from src_row(i)) into smem with padded stride.
// A row for which src_row returns null is zero-filled (`fallback` is a valid address that the
// copy does not read).
template <int D, int kThreads, typename T, typename RowPtr>
__device__ __forceinline__ void load_tile(T* smem, int rows, RowPtr src_row, const T* fallback) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  for (int idx = threadIdx.x; idx < rows * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = idx % kChunks;
    const T* src = src_row(r);
    cp_async_16(smem + r * (D + 8) + c * 8, src ? src + c * 8 : fallback, src != nullptr);
  }
}

template <typename T, int D, int MT>
__global__ void __launch_bounds__(kWarps * 32)
    flash_fwd_kernel(const __grid_constant__ FlashParams p) {
  using Tr = FlashTraits<T, D, MT>;
  constexpr int kBM = Tr::kBM, kS = Tr::kStride;
  constexpr int kNT = kBlockN / 8;  // key n-tiles of S per tile
  constexpr int kDT = D / 8;        // dim n-tiles of O
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* q_s = reinterpret_cast<T*>(smem_raw);  // [kBM][kS]
  T* k_s = q_s + kBM * kS;                  // [kBlockN][kS]
  T* v_s = k_s + kBlockN * kS;              // [kBlockN][kS]

  // Heaviest causal blocks (last rows) first: they start while the light ones fill the tail.
  const int m_block = gridDim.x - 1 - blockIdx.x;
  const int bh = blockIdx.y;  // b * n_head_kv + hk
  const int b = bh / p.n_head_kv, hk = bh % p.n_head_kv;
  const int split = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = m_block * kBM;
  const int rows_here = min(kBM, p.n_rows - row0);

  const SeqInfo si = seq_info(p, b);
  int64_t lo_first, hi_first, lo_last, hi_last;
  row_key_range(p, si, row0, &lo_first, &hi_first);
  row_key_range(p, si, row0 + rows_here - 1, &lo_last, &hi_last);
  // Rows are ordered by position, so the block's key range is [lo(first row), hi(last row)).
  const int64_t kv_lo = lo_first, kv_hi = hi_last;
  int t_begin = 0, t_end = 0;
  if (kv_hi > kv_lo) {
    t_begin = static_cast<int>(kv_lo / kBlockN);
    t_end = static_cast<int>((kv_hi + kBlockN - 1) / kBlockN);
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

  // Per-thread rows: (mt, half) -> block row warp * 16 * MT + mt * 16 + lane / 4 + 8 * half.
  float o_acc[MT][kDT][4];
  float row_max[MT][2], row_sum[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      row_max[mt][h] = -INFINITY;
      row_sum[mt][h] = 0.f;
    }
#pragma unroll
    for (int dt = 0; dt < kDT; ++dt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) o_acc[mt][dt][e] = 0.f;
    }
  }
  // Warps whose rows are all past n_rows (decode: few rows) skip the products.
  const bool warp_active = warp * 16 * MT < rows_here;

  if (t_begin < t_end) {
    load_tile<D, Tr::kThreads>(q_s, kBM, q_row, q_base);
    auto kv_row = [&](const T* base, int64_t stride, int t) {
      return [=](int r) -> const T* {
        const int64_t j = static_cast<int64_t>(t) * kBlockN + r;
        return j < kv_hi ? base + j * stride : nullptr;
      };
    };
    load_tile<D, Tr::kThreads>(k_s, kBlockN, kv_row(k_base, p.k_stride[1], t_begin), k_base);
    cp_async_commit();

    for (int t = t_begin; t < t_end; ++t) {
      cp_async_wait_all();
      __syncthreads();  // K(t) (and Q) visible; every warp is done with V(t-1)
      load_tile<D, Tr::kThreads>(v_s, kBlockN, kv_row(v_base, p.v_stride[1], t), v_base);
      cp_async_commit();

      float s[MT][kNT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) s[mt][nt][e] = 0.f;
        }
      }
      if (warp_active) {
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
          uint32_t a[MT][4];
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            const int r = warp * 16 * MT + mt * 16 + lane % 16;
            ldmatrix_x4(a[mt], q_s + r * kS + kk * 16 + (lane / 16) * 8);
          }
#pragma unroll
          for (int np = 0; np < kNT / 2; ++np) {
            uint32_t bk[4];  // b0, b1 of n-tile 2np, then of 2np + 1
            const int mat = lane / 8;
            ldmatrix_x4(bk,
                        k_s + (np * 16 + (mat / 2) * 8 + lane % 8) * kS + kk * 16 + (mat % 2) * 8);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
              mma_16816(s[mt][2 * np], a[mt], bk[0], bk[1], T{});
              mma_16816(s[mt][2 * np + 1], a[mt], bk[2], bk[3], T{});
            }
          }
        }
      }

      // Online softmax. Tiles strictly inside every row's key range skip the per-element test.
      const int j0 = t * kBlockN;
      const bool need_mask = !(j0 >= lo_last && j0 + kBlockN <= hi_first);
      uint32_t pa[MT][kBlockN / 16][4];  // P as A fragments, per 16-key step
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          // Key range of this row, recomputed here rather than held in registers (the two-m-tile
          // kernel is at the 255-register limit).
          int64_t lo = 0, hi = 0;
          if (need_mask) {
            const int r = row0 + warp * 16 * MT + mt * 16 + lane / 4 + 8 * h;
            row_key_range(p, si, min(r, p.n_rows - 1), &lo, &hi);
          }
          const float alpha = softmax_update(s[mt], h, row_max[mt][h], row_sum[mt][h], p.scale_log2,
                                             need_mask, lo, hi, j0, lane);
#pragma unroll
          for (int dt = 0; dt < kDT; ++dt) {
            o_acc[mt][dt][2 * h] *= alpha;
            o_acc[mt][dt][2 * h + 1] *= alpha;
          }
        }
#pragma unroll
        for (int ks = 0; ks < kBlockN / 16; ++ks) {
          pa[mt][ks][0] = MmaType<T>::pack(s[mt][2 * ks][0], s[mt][2 * ks][1]);
          pa[mt][ks][1] = MmaType<T>::pack(s[mt][2 * ks][2], s[mt][2 * ks][3]);
          pa[mt][ks][2] = MmaType<T>::pack(s[mt][2 * ks + 1][0], s[mt][2 * ks + 1][1]);
          pa[mt][ks][3] = MmaType<T>::pack(s[mt][2 * ks + 1][2], s[mt][2 * ks + 1][3]);
        }
      }

      cp_async_wait_all();
      __syncthreads();  // V(t) visible; every warp is done reading K(t)
      if (t + 1 < t_end) {
        load_tile<D, Tr::kThreads>(k_s, kBlockN, kv_row(k_base, p.k_stride[1], t + 1), k_base);
        cp_async_commit();
      }

      if (warp_active) {
#pragma unroll
        for (int ks = 0; ks < kBlockN / 16; ++ks) {
#pragma unroll
          for (int dp = 0; dp < kDT / 2; ++dp) {
            uint32_t bv[4];  // b0, b1 of dim n-tile 2dp, then of 2dp + 1
            const int mat = lane / 8;
            ldmatrix_x4_trans(
                bv, v_s + (ks * 16 + (mat % 2) * 8 + lane % 8) * kS + dp * 16 + (mat / 2) * 8);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
              mma_16816(o_acc[mt][2 * dp], pa[mt][ks], bv[0], bv[1], T{});
              mma_16816(o_acc[mt][2 * dp + 1], pa[mt][ks], bv[2], bv[3], T{});
            }
          }
        }
      }
    }
  }

  // Epilogue: normalise, write out (or the split's partial) and the log-sum-exp.
  constexpr float kLn2 = 0.6931471805599453f;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float l = row_sum[mt][h];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const int r = row0 + warp * 16 * MT + mt * 16 + lane / 4 + 8 * h;
      if (r >= p.n_rows) continue;
      const float inv = l > 0.f ? 1.f / l : 0.f;
      const float lse = l > 0.f ? (row_max[mt][h] + __log2f(l)) * kLn2 : -INFINITY;
      const int i = r / p.group, head = hk * p.group + r % p.group;
      if (p.n_splits > 1) {
        const int64_t prow =
            (static_cast<int64_t>(split) * p.batch * p.n_head_kv + bh) * p.n_rows + r;
        float* o = p.o_partial + prow * D;
#pragma unroll
        for (int dt = 0; dt < kDT; ++dt) {
          const int c = dt * 8 + 2 * (lane % 4);
          *reinterpret_cast<float2*>(o + c) =
              make_float2(o_acc[mt][dt][2 * h] * inv, o_acc[mt][dt][2 * h + 1] * inv);
        }
        if (lane % 4 == 0) p.lse_partial[prow] = lse;
      } else {
        const int64_t base = b * p.o_stride[0] + i * p.o_stride[1] + head * p.o_stride[2];
#pragma unroll
        for (int dt = 0; dt < kDT; ++dt) {
          const int c = dt * 8 + 2 * (lane % 4);
          store_out(p.out, p.out_dtype, base + c * p.o_stride[3], o_acc[mt][dt][2 * h] * inv);
          store_out(p.out, p.out_dtype, base + (c + 1) * p.o_stride[3],
                    o_acc[mt][dt][2 * h + 1] * inv);
        }
        if (p.lse && lane % 4 == 0) {
          p.lse[(static_cast<int64_t>(b) * p.n_head + head) * p.n_q + i] = lse;
        }
      }
    }
  }
}

template <typename T, int D, int MT>
void launch_flash_fwd(const FlashParams& p, const LaunchPlan& plan, cudaStream_t stream) {
  using Tr = FlashTraits<T, D, MT>;
  auto kernel = flash_fwd_kernel<T, D, MT>;
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kSmemBytes);
  const dim3 grid(plan.m_blocks, p.batch * p.n_head_kv, plan.n_splits);
  kernel<<<grid, Tr::kThreads, Tr::kSmemBytes, stream>>>(p);
}

}  // namespace qkv::cuda
