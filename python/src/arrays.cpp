#include "arrays.h"

#include <cstring>

namespace qkv::py {

namespace {

Elem elem_of_torch(const std::string& dtype) {
  if (dtype == "torch.float32") return Elem::f32;
  if (dtype == "torch.float16") return Elem::f16;
  if (dtype == "torch.bfloat16") return Elem::bf16;
  if (dtype == "torch.bool" || dtype == "torch.uint8") return Elem::u8;
  if (dtype == "torch.int32") return Elem::i32;
  return Elem::other;
}

Elem elem_of_numpy(const pyb::dtype& dt) {
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  if (kind == 'f' && size == 4) return Elem::f32;
  if (kind == 'f' && size == 2) return Elem::f16;
  if (kind == 'V' && size == 2 && std::string(pyb::str(dt.attr("name"))) == "bfloat16") {
    return Elem::bf16;  // ml_dtypes.bfloat16
  }
  if ((kind == 'b' || kind == 'u') && size == 1) return Elem::u8;
  if (kind == 'i' && size == 4) return Elem::i32;
  return Elem::other;
}

std::string type_error(const char* name, const std::string& dtype, const char* allowed) {
  return std::string(name) + " has dtype " + dtype + "; expected " + allowed;
}

}  // namespace

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string shape_string(const std::array<int64_t, 4>& shape) {
  return shape_string(std::vector<int64_t>(shape.begin(), shape.end()));
}

bool is_torch_tensor(const pyb::handle& obj) {
  // Without importing torch: its tensors are the only objects qkv sees with these attributes.
  return pyb::hasattr(obj, "data_ptr") && pyb::hasattr(obj, "stride") &&
         pyb::hasattr(obj, "is_sparse");
}

ArrayRef array_ref(const pyb::handle& obj, const char* name) {
  ArrayRef a;
  if (obj.is_none()) throw pyb::type_error(std::string(name) + " is None; expected an array");
  if (is_torch_tensor(obj)) {
    const std::string device = pyb::str(obj.attr("device").attr("type"));
    if (device != "cpu") {
      throw pyb::value_error(std::string(name) + " is on device " + device +
                             "; qkv's Python kernels take CPU tensors (.cpu())");
    }
    if (obj.attr("is_sparse").cast<bool>()) {
      throw pyb::value_error(std::string(name) + " is a sparse tensor; expected a strided one");
    }
    pyb::object t = pyb::reinterpret_borrow<pyb::object>(obj);
    a.is_torch = true;
    a.dtype_name = pyb::str(t.attr("dtype"));
    a.elem = elem_of_torch(a.dtype_name);
    for (auto d : t.attr("shape")) a.shape.push_back(d.cast<int64_t>());
    for (auto s : t.attr("stride")()) a.stride.push_back(s.cast<int64_t>());
    bool copy = false;
    for (int64_t s : a.stride) copy |= s < 0;
    if (copy) t = t.attr("contiguous")();
    if (copy) {
      a.stride.clear();
      for (auto s : t.attr("stride")()) a.stride.push_back(s.cast<int64_t>());
    }
    a.data = reinterpret_cast<void*>(t.attr("data_ptr")().cast<uintptr_t>());
    a.writable = !copy;
    a.owner = t;
    return a;
  }
  pyb::array arr = pyb::array::ensure(obj);
  if (!arr) {
    PyErr_Clear();
    throw pyb::type_error(std::string(name) + " is a " +
                          std::string(pyb::str(obj.get_type().attr("__name__"))) +
                          ", not an array (NumPy array, torch tensor or a buffer)");
  }
  a.dtype_name = pyb::str(arr.dtype());
  a.elem = elem_of_numpy(arr.dtype());
  if (!arr.dtype().attr("isnative").cast<bool>()) {
    throw pyb::value_error(std::string(name) + " has non-native byte order (" + a.dtype_name +
                           "); convert it with .astype(" + a.dtype_name.substr(1) + ")");
  }
  const int64_t item = arr.itemsize();
  bool copy = reinterpret_cast<uintptr_t>(arr.data()) % static_cast<uintptr_t>(item) != 0;
  for (pyb::ssize_t i = 0; i < arr.ndim(); ++i) {
    copy |= arr.strides(i) < 0 || arr.strides(i) % item != 0;
  }
  if (copy) {
    // Negative or unaligned strides: the kernels take non-negative element strides.
    arr = pyb::module_::import("numpy").attr("ascontiguousarray")(arr);
  }
  a.writable = !copy && arr.writeable();
  a.data = copy ? arr.mutable_data() : const_cast<void*>(arr.data());
  for (pyb::ssize_t i = 0; i < arr.ndim(); ++i) {
    a.shape.push_back(arr.shape(i));
    a.stride.push_back(arr.shape(i) == 1 ? 0 : arr.strides(i) / item);
  }
  a.owner = arr;
  return a;
}

View4 view4(const ArrayRef& a, const char* name, bool half_ok) {
  if (a.shape.size() != 4) {
    throw pyb::value_error(std::string(name) + " has shape " + shape_string(a.shape) +
                           "; expected 4 dimensions [batch, n, heads, dim]");
  }
  View4 v;
  v.data = a.data;
  switch (a.elem) {
    case Elem::f32:
      v.dtype = DType::f32;
      break;
    case Elem::f16:
      if (!half_ok) throw pyb::type_error(type_error(name, a.dtype_name, "float32"));
      v.dtype = DType::f16;
      break;
    case Elem::bf16:
      if (!half_ok) throw pyb::type_error(type_error(name, a.dtype_name, "float32"));
      v.dtype = DType::bf16;
      break;
    default:
      throw pyb::type_error(
          type_error(name, a.dtype_name, half_ok ? "float32, float16 or bfloat16" : "float32"));
  }
  for (int i = 0; i < 4; ++i) {
    v.shape[i] = a.shape[i];
    v.stride[i] = a.stride[i];
  }
  return v;
}

MutView4 mut_view4(const ArrayRef& a, const char* name) {
  if (a.elem != Elem::f32) throw pyb::type_error(type_error(name, a.dtype_name, "float32"));
  if (a.shape.size() != 4) {
    throw pyb::value_error(std::string(name) + " has shape " + shape_string(a.shape) +
                           "; expected 4 dimensions");
  }
  if (!a.writable) {
    throw pyb::value_error(std::string(name) +
                           " is read-only or has negative strides; pass a writable array");
  }
  MutView4 v;
  v.data = static_cast<float*>(a.data);
  for (int i = 0; i < 4; ++i) {
    v.shape[i] = a.shape[i];
    v.stride[i] = a.stride[i];
  }
  return v;
}

std::vector<int32_t> int32_vector(const pyb::handle& obj, const char* name) {
  pyb::object np = pyb::module_::import("numpy");
  pyb::object src = is_torch_tensor(obj) ? obj.attr("cpu")().attr("numpy")()
                                         : pyb::reinterpret_borrow<pyb::object>(obj);
  pyb::array arr = np.attr("asarray")(src);
  if (arr.dtype().kind() != 'i' && arr.dtype().kind() != 'u') {
    throw pyb::type_error(std::string(name) + " has dtype " + std::string(pyb::str(arr.dtype())) +
                          "; expected integers");
  }
  if (arr.ndim() != 1) {
    throw pyb::value_error(std::string(name) + " must be 1-D; it has " +
                           std::to_string(arr.ndim()) + " dimensions");
  }
  pyb::array_t<int64_t, pyb::array::c_style | pyb::array::forcecast> v(arr);
  std::vector<int32_t> out;
  for (pyb::ssize_t i = 0; i < v.size(); ++i) {
    const int64_t x = v.at(i);
    if (x < INT32_MIN || x > INT32_MAX) {
      throw pyb::value_error(std::string(name) + "[" + std::to_string(i) +
                             "] = " + std::to_string(x) + " does not fit in 32 bits");
    }
    out.push_back(static_cast<int32_t>(x));
  }
  return out;
}

std::vector<float> float_vector(const pyb::handle& obj, const char* name) {
  pyb::object np = pyb::module_::import("numpy");
  pyb::object src = is_torch_tensor(obj)
                        ? obj.attr("detach")().attr("cpu")().attr("float")().attr("numpy")()
                        : pyb::reinterpret_borrow<pyb::object>(obj);
  pyb::array arr = np.attr("asarray")(src, "float32");
  if (arr.ndim() != 1) {
    throw pyb::value_error(std::string(name) + " must be 1-D; it has " +
                           std::to_string(arr.ndim()) + " dimensions");
  }
  pyb::array_t<float, pyb::array::c_style | pyb::array::forcecast> v(arr);
  return std::vector<float>(v.data(), v.data() + v.size());
}

}  // namespace qkv::py
