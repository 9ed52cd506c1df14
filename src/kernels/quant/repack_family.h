// The per-family pieces behind repack.h's dispatch (repack.cpp): each family of block formats
// (repack_legacy.cpp: the 32-value formats; repack_k.cpp: the K formats) packs and multiplies its
// own types and answers false / 0 for the others.
#pragma once

#include <cstdint>

#include "kernels/quant/blocks.h"

namespace qkv::kernels::cpu {
struct RepackedTask;
}

namespace qkv::kernels::quant {

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
bool gemm_repacked_k(const cpu::RepackedTask& t, int64_t g0, int64_t g1);
}  // namespace avx2
namespace avx512 {
bool gemm_repacked_legacy(const cpu::RepackedTask& t, int64_t g0, int64_t g1);
bool gemm_repacked_k(const cpu::RepackedTask& t, int64_t g0, int64_t g1);
}  // namespace avx512

}  // namespace qkv::kernels::quant
