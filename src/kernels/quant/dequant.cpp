// Dispatch of the scalar dequantizers by type.
#include "kernels/quant/dequant.h"

namespace qkv::kernels::quant {

void dequantize(QuantType t, const void* blocks, int64_t n, float* out) {
  switch (t) {
    case QuantType::q4_0:
      return dequantize_q4_0(static_cast<const BlockQ4_0*>(blocks), n, out);
    case QuantType::q4_1:
      return dequantize_q4_1(static_cast<const BlockQ4_1*>(blocks), n, out);
    case QuantType::q5_0:
      return dequantize_q5_0(static_cast<const BlockQ5_0*>(blocks), n, out);
    case QuantType::q5_1:
      return dequantize_q5_1(static_cast<const BlockQ5_1*>(blocks), n, out);
    case QuantType::q8_0:
      return dequantize_q8_0(static_cast<const BlockQ8_0*>(blocks), n, out);
    case QuantType::q2_k:
      return dequantize_q2_k(static_cast<const BlockQ2K*>(blocks), n, out);
    case QuantType::q3_k:
      return dequantize_q3_k(static_cast<const BlockQ3K*>(blocks), n, out);
    case QuantType::q4_k:
      return dequantize_q4_k(static_cast<const BlockQ4K*>(blocks), n, out);
    case QuantType::q5_k:
      return dequantize_q5_k(static_cast<const BlockQ5K*>(blocks), n, out);
    case QuantType::q6_k:
      return dequantize_q6_k(static_cast<const BlockQ6K*>(blocks), n, out);
    case QuantType::iq4_nl:
      return dequantize_iq4_nl(static_cast<const BlockIq4Nl*>(blocks), n, out);
    case QuantType::iq4_xs:
      return dequantize_iq4_xs(static_cast<const BlockIq4Xs*>(blocks), n, out);
  }
}

}  // namespace qkv::kernels::quant
