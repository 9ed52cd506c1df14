// MetaValue, Metadata, tensor types and fp32 decoding.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "formats/quant_types.h"
#include "kernels/quant/dequant.h"
#include "qkv/model_file.h"

namespace qkv {

std::string_view tensor_type_name(TensorType t) {
  if (const auto q = formats::quant_type_of(t)) return kernels::quant::quant_format(*q).name;
  switch (t) {
    case TensorType::f32:
      return "F32";
    case TensorType::f16:
      return "F16";
    case TensorType::bf16:
      return "BF16";
    case TensorType::i32:
      return "I32";
    default:
      return "?";
  }
}

bool tensor_type_is_quantized(TensorType t) {
  return formats::quant_type_of(t).has_value();
}

int64_t tensor_type_block(TensorType t) {
  const auto q = formats::quant_type_of(t);
  return q ? kernels::quant::quant_block_elems(*q) : 1;
}

int64_t tensor_type_block_bytes(TensorType t) {
  if (const auto q = formats::quant_type_of(t)) return kernels::quant::quant_block_bytes(*q);
  switch (t) {
    case TensorType::f16:
    case TensorType::bf16:
      return 2;
    default:
      return 4;  // f32, i32
  }
}

std::string_view file_format_name(FileFormat f) {
  switch (f) {
    case FileFormat::gguf:
      return "gguf";
    case FileFormat::safetensors:
      return "safetensors";
    case FileFormat::llama2c:
      return "llama2.c";
    case FileFormat::hf_folder:
      return "hf";
  }
  return "?";
}

std::string_view meta_type_name(MetaValue::Type t) {
  static constexpr std::string_view names[] = {"u8",  "i8",  "u16",  "i16",    "u32",
                                               "i32", "f32", "bool", "string", "array",
                                               "u64", "i64", "f64"};
  const auto i = static_cast<size_t>(t);
  return i < std::size(names) ? names[i] : "?";
}

MetaValue MetaValue::make_uint(Type t, uint64_t v) {
  MetaValue m;
  m.type_ = t;
  m.bits_ = v;
  return m;
}

MetaValue MetaValue::make_int(Type t, int64_t v) {
  MetaValue m;
  m.type_ = t;
  m.bits_ = static_cast<uint64_t>(v);
  return m;
}

MetaValue MetaValue::make_float(Type t, double v) {
  MetaValue m;
  m.type_ = t;
  m.bits_ =
      t == Type::f32 ? std::bit_cast<uint32_t>(static_cast<float>(v)) : std::bit_cast<uint64_t>(v);
  return m;
}

MetaValue MetaValue::make_bool(bool v) {
  MetaValue m;
  m.type_ = Type::boolean;
  m.bits_ = v ? 1 : 0;
  return m;
}

MetaValue MetaValue::make_string(std::string v) {
  MetaValue m;
  m.type_ = Type::string;
  m.str_ = std::move(v);
  return m;
}

MetaValue MetaValue::make_array(Type elem, std::vector<MetaValue> items) {
  MetaValue m;
  m.type_ = Type::array;
  m.elem_ = elem;
  m.items_ = std::move(items);
  return m;
}

bool MetaValue::is_integer() const {
  switch (type_) {
    case Type::u8:
    case Type::i8:
    case Type::u16:
    case Type::i16:
    case Type::u32:
    case Type::i32:
    case Type::u64:
    case Type::i64:
      return true;
    default:
      return false;
  }
}

int64_t MetaValue::as_int(std::string_view what) const {
  switch (type_) {
    case Type::u8:
    case Type::u16:
    case Type::u32:
      return static_cast<int64_t>(bits_);
    case Type::u64:
      if (bits_ > static_cast<uint64_t>(INT64_MAX)) {
        core::throw_error(what, ": expected an integer below 2^63, found ", bits_);
      }
      return static_cast<int64_t>(bits_);
    case Type::i8:
      return static_cast<int8_t>(bits_);
    case Type::i16:
      return static_cast<int16_t>(bits_);
    case Type::i32:
      return static_cast<int32_t>(bits_);
    case Type::i64:
      return static_cast<int64_t>(bits_);
    case Type::boolean:
      return static_cast<int64_t>(bits_);
    default:
      core::throw_error(what, ": expected an integer, found ", meta_type_name(type_));
  }
}

double MetaValue::as_float(std::string_view what) const {
  if (type_ == Type::f32) return std::bit_cast<float>(static_cast<uint32_t>(bits_));
  if (type_ == Type::f64) return std::bit_cast<double>(bits_);
  if (is_integer()) return static_cast<double>(as_int(what));
  core::throw_error(what, ": expected a number, found ", meta_type_name(type_));
}

bool MetaValue::as_bool(std::string_view what) const {
  if (type_ == Type::boolean) return bits_ != 0;
  core::throw_error(what, ": expected a bool, found ", meta_type_name(type_));
}

const std::string& MetaValue::as_string(std::string_view what) const {
  if (type_ == Type::string) return str_;
  core::throw_error(what, ": expected a string, found ", meta_type_name(type_));
}

const std::vector<MetaValue>& MetaValue::as_array(std::string_view what) const {
  if (type_ == Type::array) return items_;
  core::throw_error(what, ": expected an array, found ", meta_type_name(type_));
}

std::string MetaValue::to_string(size_t max_items) const {
  switch (type_) {
    case Type::string: {
      std::string s = str_.size() > 60 ? str_.substr(0, 57) + "..." : str_;
      return "\"" + s + "\"";
    }
    case Type::boolean:
      return bits_ ? "true" : "false";
    case Type::f32:
    case Type::f64:
      return core::concat(as_float());
    case Type::array: {
      if (items_.size() > max_items) {
        return core::concat("[", meta_type_name(elem_), " x ", items_.size(), "]");
      }
      std::string s = "[";
      for (size_t i = 0; i < items_.size(); ++i) {
        if (i) s += ", ";
        s += items_[i].to_string(max_items);
      }
      return s + "]";
    }
    case Type::u64:
      return core::concat(bits_);
    default:
      return core::concat(as_int());
  }
}

void Metadata::set(std::string key, MetaValue value) {
  for (auto& [k, v] : entries_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

const MetaValue* Metadata::find(std::string_view key) const {
  for (const auto& [k, v] : entries_) {
    if (k == key) return &v;
  }
  return nullptr;
}

const MetaValue& Metadata::at(std::string_view key) const {
  const MetaValue* v = find(key);
  if (v == nullptr) core::throw_error("metadata key '", key, "' is missing");
  return *v;
}

int64_t TensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const TensorInfo* ModelFile::find_tensor(std::string_view name) const {
  for (const TensorInfo& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const TensorInfo& ModelFile::tensor(std::string_view name) const {
  const TensorInfo* t = find_tensor(name);
  if (t == nullptr) core::throw_error(path, ": tensor '", name, "' not found");
  return *t;
}

void dequantize_q8_0(const std::byte* blocks, int64_t n, float* out) {
  kernels::quant::dequantize_q8_0(reinterpret_cast<const kernels::quant::BlockQ8_0*>(blocks), n,
                                  out);
}

// The reference ggml quantisation (quantize_row_q8_0_ref): d = amax / 127, q = round(x / d).
void quantize_q8_0(const float* x, int64_t n, std::byte* blocks) {
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x + b * 32;
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    auto* blk = reinterpret_cast<kernels::quant::BlockQ8_0*>(blocks) + b;
    blk->d = core::f32_to_f16(d);
    for (int i = 0; i < 32; ++i) blk->qs[i] = static_cast<int8_t>(std::lround(xb[i] * id));
  }
}

std::vector<float> tensor_to_f32(const TensorInfo& t) {
  const int64_t n = t.n_elements();
  std::vector<float> out(static_cast<size_t>(n));
  if (n == 0) return out;  // a zero-sized tensor: no bytes to read (data may be null)
  switch (t.type) {
    case TensorType::f32:
      std::memcpy(out.data(), t.data, static_cast<size_t>(n) * 4);
      break;
    case TensorType::f16:
    case TensorType::bf16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, t.data + 2 * i, 2);
        out[i] = t.type == TensorType::f16 ? core::f16_to_f32(h) : core::bf16_to_f32(h);
      }
      break;
    case TensorType::i32:
      for (int64_t i = 0; i < n; ++i) {
        int32_t v;
        std::memcpy(&v, t.data + 4 * i, 4);
        out[i] = static_cast<float>(v);
      }
      break;
    default:  // the block formats; the reader checked the row length and the byte count
      kernels::quant::dequantize(*formats::quant_type_of(t.type), t.data, n, out.data());
      break;
  }
  return out;
}

}  // namespace qkv
