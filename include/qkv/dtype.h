// qkv — element types and strided views shared by the public API.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace qkv {

enum class DType : uint8_t { f32, f16, bf16 };

std::string_view dtype_name(DType t);
// Bytes per element.
int dtype_size(DType t);
// Parses "f32"/"fp32"/"float32", "f16"/"fp16"/"float16", "bf16"/"bfloat16"; throws InvalidArgument.
DType parse_dtype(std::string_view name);

// A read-only 4-D strided view. Strides are in elements, not bytes, and may be any non-negative
// values (a zero stride broadcasts). Dimension names depend on the use; see attention.h.
struct View4 {
  const void* data = nullptr;
  DType dtype = DType::f32;
  std::array<int64_t, 4> shape{};
  std::array<int64_t, 4> stride{};

  // A dense row-major view of `shape`.
  static View4 dense(const void* data, DType dtype, std::array<int64_t, 4> shape);
};

// A writable fp32 4-D strided view (outputs).
struct MutView4 {
  float* data = nullptr;
  std::array<int64_t, 4> shape{};
  std::array<int64_t, 4> stride{};

  static MutView4 dense(float* data, std::array<int64_t, 4> shape);
};

// Row-major strides of a dense tensor of `shape`.
std::array<int64_t, 4> dense_strides(const std::array<int64_t, 4>& shape);

// IEEE half and bfloat16 conversions (round to nearest even; NaN stays NaN).
uint16_t f32_to_f16(float x);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float x);
float bf16_to_f32(uint16_t h);

}  // namespace qkv
