// TensorType (the public storage types) <-> the block formats of src/kernels/quant (not public).
#pragma once

#include <optional>

#include "kernels/quant/blocks.h"
#include "qkv/model_file.h"

namespace qkv::formats {

inline std::optional<kernels::quant::QuantType> quant_type_of(TensorType t) {
  using Q = kernels::quant::QuantType;
  switch (t) {
    case TensorType::q4_0:
      return Q::q4_0;
    case TensorType::q4_1:
      return Q::q4_1;
    case TensorType::q5_0:
      return Q::q5_0;
    case TensorType::q5_1:
      return Q::q5_1;
    case TensorType::q8_0:
      return Q::q8_0;
    case TensorType::q2_k:
      return Q::q2_k;
    case TensorType::q3_k:
      return Q::q3_k;
    case TensorType::q4_k:
      return Q::q4_k;
    case TensorType::q5_k:
      return Q::q5_k;
    case TensorType::q6_k:
      return Q::q6_k;
    case TensorType::iq4_nl:
      return Q::iq4_nl;
    case TensorType::iq4_xs:
      return Q::iq4_xs;
    case TensorType::f32:
    case TensorType::f16:
    case TensorType::bf16:
    case TensorType::i32:
      break;
  }
  return std::nullopt;
}

inline TensorType tensor_type_of(kernels::quant::QuantType q) {
  static constexpr TensorType types[kernels::quant::kQuantTypeCount] = {
      TensorType::q4_0, TensorType::q4_1, TensorType::q5_0,   TensorType::q5_1,
      TensorType::q8_0, TensorType::q2_k, TensorType::q3_k,   TensorType::q4_k,
      TensorType::q5_k, TensorType::q6_k, TensorType::iq4_nl, TensorType::iq4_xs};
  return types[static_cast<int>(q)];
}

}  // namespace qkv::formats
