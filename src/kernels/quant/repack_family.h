// The per-family pieces behind repack.h's dispatch (repack.cpp): each family of block formats
// (repack_legacy.cpp: the 32-value formats; repack_k.cpp: the K formats) packs and multiplies its
// own types and answers false / 0 for the others.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/quant/blocks.h"

namespace qkv::kernels::cpu {
struct RepackedTask;
}

namespace qkv::kernels::quant {

// Where block b of a 32-value format's group lies (repack_legacy.cpp): units of kPerUnit blocks,
// each 64 bytes of scales (kScaleBytes per block) then the blocks' codes (kCodeBytes each).
template <int64_t kScaleBytes, int64_t kCodeBytes>
struct LegacyLayout {
  static constexpr int64_t kPerUnit = 64 / kScaleBytes;
  static constexpr int64_t kUnitBytes = 64 + kPerUnit * kCodeBytes;
  static constexpr int64_t scales(int64_t b) {
    return b / kPerUnit * kUnitBytes + b % kPerUnit * kScaleBytes;
  }
  static constexpr int64_t codes(int64_t b) {
    return b / kPerUnit * kUnitBytes + 64 + b % kPerUnit * kCodeBytes;
  }
};

// A family's layout: 0 bytes where it has none for t.
int64_t legacy_group_bytes(QuantType t, int64_t n_in);
// One group of rows [16 g, 16 g + 16) (those at or past n_out zero) at `out`.
void legacy_pack_group(QuantType t, const uint8_t* w, int64_t w_stride, int64_t n_out, int64_t n_in,
                       int64_t g, uint8_t* out);
// The reference twin for one group (the canonical arithmetic of repack.h).
void legacy_reference_group(QuantType t, const uint8_t* group, int64_t n_out, int64_t n_in,
                            const uint8_t* xq, int64_t ldxq, int64_t m, int64_t g, float* y,
                            int64_t ldy, const float* bias);

// The K family (repack_k.cpp: Q4_K, Q5_K, Q6_K, IQ4_XS), the same pieces.
int64_t k_group_bytes(QuantType t, int64_t n_in);
void k_pack_group(QuantType t, const uint8_t* w, int64_t w_stride, int64_t n_out, int64_t n_in,
                  int64_t g, uint8_t* out);
void k_reference_group(QuantType t, const uint8_t* group, int64_t n_out, int64_t n_in,
                       const uint8_t* xq, int64_t ldxq, int64_t m, int64_t g, float* y, int64_t ldy,
                       const float* bias);

namespace avx2 {
bool gemm_repacked_legacy(const cpu::RepackedTask& t, int64_t g0, int64_t g1);
// The integer sums of q per ActBlock32 of t's rows [0, m): sums[i * nb + b] (the offset terms of
// the unsigned codes); the AVX-512 kernels use it too. Needs the avx2 target.
void legacy_block_sums(const cpu::RepackedTask& t, int64_t nb, std::vector<int32_t>& sums);
bool gemm_repacked_k(const cpu::RepackedTask& t, int64_t g0, int64_t g1);
}  // namespace avx2
namespace avx512 {
bool gemm_repacked_legacy(const cpu::RepackedTask& t, int64_t g0, int64_t g1);
bool gemm_repacked_k(const cpu::RepackedTask& t, int64_t g0, int64_t g1);
}  // namespace avx512

}  // namespace qkv::kernels::quant
