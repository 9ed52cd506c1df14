// The parameter block of the CUDA attention kernels and the host-side launch planning.
// Plain C++ (no CUDA headers), so host code and tests can use it without nvcc.
#pragma once

#include <cstdint>

namespace qkv::cuda {

// Query rows are packed per KV head: row r of KV head hk is query i = r / group of head
// hk * group + r % group. A K/V tile loaded once then serves every query head of its group
// (GQA/MQA), and a decode step with one query still fills `group` rows of a tile.
struct FlashParams {
  const void* q = nullptr;  // [batch, n_q, n_head, head_dim]      f16/bf16
  const void* k = nullptr;  // [batch, n_kv, n_head_kv, head_dim]  same dtype
  const void* v = nullptr;  // [batch, n_kv, n_head_kv, head_dim]  same dtype
  int64_t q_stride[3] = {}, k_stride[3] = {}, v_stride[3] = {};  // batch, seq, head (elements)
  void* out = nullptr;                                           // [batch, n_q, n_head, head_dim]
  int64_t o_stride[4] = {};
  int out_dtype = 0;     // 0 f32, 1 f16, 2 bf16
  float* lse = nullptr;  // [batch, n_head, n_q] or null

  // Split-KV: with n_splits > 1 each split writes its normalised partial output and lse here, and
  // flash_merge combines them.
  float* o_partial = nullptr;    // [n_splits, batch * n_head_kv, n_rows, head_dim]
  float* lse_partial = nullptr;  // [n_splits, batch * n_head_kv, n_rows]
  int n_splits = 1;
  int tiles_per_split = 0;  // key tiles (of the kernel's size) per split

  const int32_t* seq_info = nullptr;  // device [batch][2] = {position of query 0, kv_len}, or null
  int batch = 0, n_q = 0, n_kv = 0, n_head = 0, n_head_kv = 0, group = 1, head_dim = 0;
  int n_rows = 0;          // n_q * group
  float scale_log2 = 0.f;  // scale * log2(e): the softmax runs in base 2
  bool causal = false;
  int64_t window_left = -1, window_right = -1;
  bool bf16 = false;  // input dtype: bf16 (else f16)
};

constexpr int kSm90BlockM = 128, kSm90BlockN = 128;  // rows and keys per tile, sm90 kernel
constexpr int kBlockN = 64;                          // keys per tile
constexpr int kWarps = 4;  // warps per block; each owns 16 * m_tiles query rows

// Rows per block for a number of 16-row MMA tiles per warp.
constexpr int block_m(int m_tiles) {
  return kWarps * 16 * m_tiles;
}

// sm90: two warpgroups, 128 x 128 tiles; sm90_1wg: one warpgroup, 64 x 64 tiles, two blocks per
// multiprocessor.
enum class FlashKernel : int { automatic, mma, sm90, sm90_1wg };

struct LaunchPlan {
  FlashKernel kernel = FlashKernel::mma;  // mma: flash_fwd.cuh (sm_80+); sm90: flash_fwd_sm90.cuh
  int m_tiles = 2;  // mma kernel, 16-row tiles per warp: 2 for prefill (K/V fragments reused
                    // twice), 1 for decode-like problems with few rows
  int m_blocks = 0;
  int n_splits = 1;
  int tiles_per_split = 0;  // in the kernel's key tiles
};

// Chooses the kernel, the tile shape and the number of KV splits. n_sms: multiprocessors of the
// device; sm90: the device is a Hopper (compute capability 9.0), where the sm_90a code runs;
// kernel: automatic, or one to force (mma always works; sm90 only for head_dim 64 and 128 on
// Hopper). force_splits > 0 overrides the split heuristic (benchmarks, tests).
LaunchPlan plan_launch(int64_t batch, int64_t n_head_kv, int64_t n_rows, int64_t n_kv, int head_dim,
                       int n_sms, int force_splits = 0, bool sm90 = false,
                       FlashKernel kernel = FlashKernel::automatic);

// Kernel launches (one translation unit per head_dim); `stream` is a cudaStream_t. The caller
// checks cudaGetLastError.
void flash_fwd_hdim64(const FlashParams& p, const LaunchPlan& plan, void* stream);
void flash_fwd_hdim96(const FlashParams& p, const LaunchPlan& plan, void* stream);
void flash_fwd_hdim128(const FlashParams& p, const LaunchPlan& plan, void* stream);
void flash_fwd_hdim256(const FlashParams& p, const LaunchPlan& plan, void* stream);
void flash_fwd_sm90_hdim64(const FlashParams& p, const LaunchPlan& plan, void* stream);
void flash_fwd_sm90_hdim128(const FlashParams& p, const LaunchPlan& plan, void* stream);
// True when the device is usable and this binary holds code for it (cudaFuncGetAttributes).
bool flash_kernels_loadable();
// Combines the n_splits partial outputs and lse of a split-KV launch into out and lse.
void flash_merge(const FlashParams& p, void* stream);

}  // namespace qkv::cuda
