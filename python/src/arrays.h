// Arrays from Python as qkv views, without copies: NumPy arrays (and anything NumPy can view
// without copying: the buffer protocol, __array_interface__) and CPU torch tensors (read through
// data_ptr(), stride() and shape, so bfloat16 tensors work although NumPy has no bfloat16).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "qkv/dtype.h"

namespace qkv::py {

namespace pyb = pybind11;

enum class Elem : uint8_t { f32, f16, bf16, u8, i32, other };

// What a Python array is: its data, element type, shape and strides in elements. `owner` keeps
// alive whatever holds the data (the caller's object, or a copy made for negative or unaligned
// strides, the one case where an input is copied).
struct ArrayRef {
  pyb::object owner;
  void* data = nullptr;
  Elem elem = Elem::other;
  std::string dtype_name;  // as Python names it, for messages
  std::vector<int64_t> shape;
  std::vector<int64_t> stride;
  bool writable = false;
  bool is_torch = false;
};

bool is_torch_tensor(const pyb::handle& obj);

// `name` is the argument's name in messages (ValueError / TypeError naming it).
ArrayRef array_ref(const pyb::handle& obj, const char* name);

// A 4-D input view; element types allowed: f32 always, f16/bf16 when `half_ok`.
View4 view4(const ArrayRef& a, const char* name, bool half_ok);
// A 4-D fp32 output view (writable, float32).
MutView4 mut_view4(const ArrayRef& a, const char* name);

// A dense 1-D copy (small per-sequence or per-head arrays: kv_lengths, q_offsets, slopes).
std::vector<int32_t> int32_vector(const pyb::handle& obj, const char* name);
std::vector<float> float_vector(const pyb::handle& obj, const char* name);

std::string shape_string(const std::vector<int64_t>& shape);
std::string shape_string(const std::array<int64_t, 4>& shape);

}  // namespace qkv::py
