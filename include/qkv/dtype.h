// qkv — element types and strided views shared by the public API.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace qkv {

// f32, f16 and bf16 hold one value per element. q8_0 is a block type (ggml's Q8_0, used for
// quantized KV caches): 32 consecutive values of the last dimension share one block of 34 bytes,
// {f16 d; int8 q[32]}, value i = d * q[i].
enum class DType : uint8_t { f32, f16, bf16, q8_0 };

std::string_view dtype_name(DType t);
// Bytes per element of f32, f16 and bf16; 0 for the block types (see dtype_bytes).
int dtype_size(DType t);
// Values per block: 1 for f32, f16, bf16; 32 for q8_0.
int dtype_block_elems(DType t);
// Bytes per block: 4, 2, 2; 34 for q8_0.
int dtype_block_bytes(DType t);
// Bytes of n consecutive values along the last dimension (n a multiple of dtype_block_elems).
inline int64_t dtype_bytes(DType t, int64_t n) {
  return n / dtype_block_elems(t) * dtype_block_bytes(t);
}
inline bool dtype_is_blocked(DType t) {
  return t == DType::q8_0;
}
// Parses "f32"/"fp32"/"float32", "f16"/"fp16"/"float16", "bf16"/"bfloat16", "q8_0"; throws
// InvalidArgument.
DType parse_dtype(std::string_view name);

// A read-only 4-D strided view. Strides are in elements, not bytes, and may be any non-negative
// values (a zero stride broadcasts). Dimension names depend on the use; see attention.h.
// For a block type (q8_0) strides still count values: the value at element offset e lies in block
// e / 32, which starts at byte (e / 32) * 34 of data. Such a view has stride[3] = 1, shape[3] and
// the other strides multiples of 32, so that every row starts on a block: View4::dense of a
// [.., .., .., head_dim] tensor of blocks is one.
struct View4 {
  const void* data = nullptr;
  DType dtype = DType::f32;
  std::array<int64_t, 4> shape{};
  std::array<int64_t, 4> stride{};

  // A dense row-major view of `shape`.
  static View4 dense(const void* data, DType dtype, std::array<int64_t, 4> shape);
};

// The value at index (i0, i1, i2, i3) of a view of any dtype, as fp32 (slow: for tests, tools and
// observers, not kernels).
float view_element(const View4& t, int64_t i0, int64_t i1, int64_t i2, int64_t i3);

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
