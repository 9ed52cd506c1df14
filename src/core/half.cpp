#include "core/half.h"

#include <string>

#include "core/error.h"
#include "qkv/dtype.h"

namespace qkv {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32:
      return "f32";
    case DType::f16:
      return "f16";
    case DType::bf16:
      return "bf16";
    case DType::q8_0:
      return "q8_0";
  }
  return "unknown";
}

int dtype_size(DType t) {
  switch (t) {
    case DType::f32:
      return 4;
    case DType::f16:
    case DType::bf16:
      return 2;
    case DType::q8_0:
      break;
  }
  return 0;
}

int dtype_block_elems(DType t) {
  return t == DType::q8_0 ? 32 : 1;
}

int dtype_block_bytes(DType t) {
  return t == DType::q8_0 ? 34 : dtype_size(t);
}

float view_element(const View4& t, int64_t i0, int64_t i1, int64_t i2, int64_t i3) {
  const int64_t off = i0 * t.stride[0] + i1 * t.stride[1] + i2 * t.stride[2] + i3 * t.stride[3];
  switch (t.dtype) {
    case DType::f32:
      return static_cast<const float*>(t.data)[off];
    case DType::f16:
      return core::f16_to_f32(static_cast<const uint16_t*>(t.data)[off]);
    case DType::bf16:
      return core::bf16_to_f32(static_cast<const uint16_t*>(t.data)[off]);
    case DType::q8_0:
      return core::q8_0_value(t.data, off);
  }
  return 0.f;
}

DType parse_dtype(std::string_view name) {
  if (name == "f32" || name == "fp32" || name == "float32") return DType::f32;
  if (name == "f16" || name == "fp16" || name == "float16") return DType::f16;
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  if (name == "q8_0") return DType::q8_0;
  core::throw_invalid("unknown dtype '", name, "': expected f32, f16, bf16 or q8_0");
}

std::array<int64_t, 4> dense_strides(const std::array<int64_t, 4>& shape) {
  return {shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1};
}

View4 View4::dense(const void* data, DType dtype, std::array<int64_t, 4> shape) {
  return View4{data, dtype, shape, dense_strides(shape)};
}

MutView4 MutView4::dense(float* data, std::array<int64_t, 4> shape) {
  return MutView4{data, shape, dense_strides(shape)};
}

uint16_t f32_to_f16(float x) {
  return core::f32_to_f16(x);
}
float f16_to_f32(uint16_t h) {
  return core::f16_to_f32(h);
}
uint16_t f32_to_bf16(float x) {
  return core::f32_to_bf16(x);
}
float bf16_to_f32(uint16_t h) {
  return core::bf16_to_f32(h);
}

}  // namespace qkv
