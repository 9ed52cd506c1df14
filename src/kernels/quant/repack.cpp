// Dispatch of the interleaved layouts (repack.h) to their families (repack_family.h).
#include "kernels/quant/repack.h"

#include "kernels/cpu/linear_target.h"
#include "kernels/quant/repack_family.h"

namespace qkv::kernels::quant {

int64_t repacked_group_bytes(QuantType t, int64_t n_in) {
  const int64_t legacy = legacy_group_bytes(t, n_in);
  return legacy ? legacy : k_group_bytes(t, n_in);
}

bool repack_supported(QuantType t) {
  return repacked_group_bytes(t, quant_block_elems(t)) > 0;
}

int64_t repacked_bytes(QuantType t, int64_t n_out, int64_t n_in) {
  return (n_out + kRepackRows - 1) / kRepackRows * repacked_group_bytes(t, n_in);
}

void repack(QuantType t, const uint8_t* w, int64_t w_stride, int64_t n_out, int64_t n_in,
            int64_t g0, int64_t g1, uint8_t* out) {
  const int64_t bytes = repacked_group_bytes(t, n_in);
  for (int64_t g = g0; g < g1; ++g) {
    if (legacy_group_bytes(t, n_in)) {
      legacy_pack_group(t, w, w_stride, n_out, n_in, g, out + g * bytes);
    } else if (k_group_bytes(t, n_in)) {
      k_pack_group(t, w, w_stride, n_out, n_in, g, out + g * bytes);
    }
  }
}

void repacked_gemm_reference(QuantType t, const uint8_t* packed, int64_t n_out, int64_t n_in,
                             const uint8_t* xq, int64_t ldxq, int64_t m, int64_t g0, int64_t g1,
                             float* y, int64_t ldy, const float* bias) {
  const int64_t bytes = repacked_group_bytes(t, n_in);
  for (int64_t g = g0; g < g1; ++g) {
    if (legacy_group_bytes(t, n_in)) {
      legacy_reference_group(t, packed + g * bytes, n_out, n_in, xq, ldxq, m, g, y, ldy, bias);
    } else if (k_group_bytes(t, n_in)) {
      k_reference_group(t, packed + g * bytes, n_out, n_in, xq, ldxq, m, g, y, ldy, bias);
    }
  }
}

bool avx2::gemm_repacked(const cpu::RepackedTask& t, int64_t g0, int64_t g1) {
  return gemm_repacked_legacy(t, g0, g1) || gemm_repacked_k(t, g0, g1);
}

bool avx512::gemm_repacked(const cpu::RepackedTask& t, int64_t g0, int64_t g1) {
  return gemm_repacked_legacy(t, g0, g1) || gemm_repacked_k(t, g0, g1);
}

}  // namespace qkv::kernels::quant
