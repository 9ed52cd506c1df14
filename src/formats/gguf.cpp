// GGUF v2/v3 reader and writer. Layout (all little-endian):
//   "GGUF" u32 version, u64 n_tensors, u64 n_kv,
//   n_kv x {string key, u32 type, value}, n_tensors x {string name, u32 n_dims, u64 ne[n_dims],
//   u32 ggml_type, u64 offset}, padding to general.alignment (default 32), tensor data.
// A string is u64 length + bytes; an array is u32 element type + u64 count + elements.
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <unordered_set>

#include "core/file_io.h"
#include "formats/gguf_internal.h"
#include "formats/mapped_file.h"
#include "formats/quant_types.h"

namespace qkv::formats {
namespace {

using Type = MetaValue::Type;

constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxArrayDepth = 8;  // nesting beyond this is refused (no stack exhaustion)
constexpr uint32_t kMaxDims = 4;   // GGML_MAX_DIMS

// The smallest encoding of one value of `t`, to bound counts by the bytes left.
uint64_t min_value_bytes(Type t) {
  switch (t) {
    case Type::u8:
    case Type::i8:
    case Type::boolean:
      return 1;
    case Type::u16:
    case Type::i16:
      return 2;
    case Type::u32:
    case Type::i32:
    case Type::f32:
      return 4;
    case Type::string:
      return 8;
    case Type::array:
      return 12;
    default:
      return 8;
  }
}

std::string read_string(ByteReader& r, std::string_view field) {
  const auto n = r.read<uint64_t>(field);
  r.need(n, field);
  return std::string(r.read_bytes(n, field));
}

MetaValue read_value(ByteReader& r, Type t, const std::string& key, int depth) {
  switch (t) {
    case Type::u8:
      return MetaValue::make_uint(t, r.read<uint8_t>(key));
    case Type::i8:
      return MetaValue::make_int(t, r.read<int8_t>(key));
    case Type::u16:
      return MetaValue::make_uint(t, r.read<uint16_t>(key));
    case Type::i16:
      return MetaValue::make_int(t, r.read<int16_t>(key));
    case Type::u32:
      return MetaValue::make_uint(t, r.read<uint32_t>(key));
    case Type::i32:
      return MetaValue::make_int(t, r.read<int32_t>(key));
    case Type::u64:
      return MetaValue::make_uint(t, r.read<uint64_t>(key));
    case Type::i64:
      return MetaValue::make_int(t, r.read<int64_t>(key));
    case Type::f32:
      return MetaValue::make_float(t, r.read<float>(key));
    case Type::f64:
      return MetaValue::make_float(t, r.read<double>(key));
    case Type::boolean: {
      const auto b = r.read<uint8_t>(key);
      if (b > 1) {
        core::throw_error(r.file(), ": metadata '", key, "' (bool) at byte ", r.pos() - 1,
                          ": expected 0 or 1, found ", int(b));
      }
      return MetaValue::make_bool(b != 0);
    }
    case Type::string:
      return MetaValue::make_string(read_string(r, key));
    case Type::array: {
      if (depth >= kMaxArrayDepth) {
        core::throw_error(r.file(), ": metadata '", key, "': arrays nested deeper than ",
                          kMaxArrayDepth, " levels");
      }
      const auto elem = r.read<uint32_t>(key + " (array type)");
      if (elem > static_cast<uint32_t>(Type::f64)) {
        core::throw_error(r.file(), ": metadata '", key, "' array element type: expected 0..12",
                          ", found ", elem);
      }
      const auto n = r.read<uint64_t>(key + " (array count)");
      const Type et = static_cast<Type>(elem);
      if (n > r.remaining() / min_value_bytes(et)) {
        core::throw_error(r.file(), ": metadata '", key, "' array count: expected at most ",
                          r.remaining() / min_value_bytes(et), " ", meta_type_name(et),
                          " values in the ", r.remaining(), " bytes left, found ", n);
      }
      std::vector<MetaValue> items;
      items.reserve(static_cast<size_t>(n));
      for (uint64_t i = 0; i < n; ++i) items.push_back(read_value(r, et, key, depth + 1));
      return MetaValue::make_array(et, std::move(items));
    }
  }
  core::throw_error(r.file(), ": metadata '", key, "' type: expected 0..12, found ",
                    static_cast<int>(t));
}

}  // namespace

// ggml type ids of the types qkv reads; all others are refused by name.
std::optional<TensorType> tensor_type_from_ggml(uint32_t id) {
  if (const auto q = kernels::quant::quant_type_from_ggml(id)) return tensor_type_of(*q);
  switch (id) {
    case 0:
      return TensorType::f32;
    case 1:
      return TensorType::f16;
    case 26:
      return TensorType::i32;
    case 30:
      return TensorType::bf16;
    default:
      return std::nullopt;
  }
}

uint32_t ggml_type_id(TensorType t) {
  if (const auto q = quant_type_of(t)) return kernels::quant::quant_format(*q).ggml_id;
  switch (t) {
    case TensorType::f16:
      return 1;
    case TensorType::i32:
      return 26;
    case TensorType::bf16:
      return 30;
    default:
      return 0;  // f32
  }
}

std::string_view ggml_type_name(uint32_t id) {
  static constexpr std::string_view names[] = {"F32",
                                               "F16",
                                               "Q4_0",
                                               "Q4_1",
                                               "Q4_2 (removed)",
                                               "Q4_3 (removed)",
                                               "Q5_0",
                                               "Q5_1",
                                               "Q8_0",
                                               "Q8_1",
                                               "Q2_K",
                                               "Q3_K",
                                               "Q4_K",
                                               "Q5_K",
                                               "Q6_K",
                                               "Q8_K",
                                               "IQ2_XXS",
                                               "IQ2_XS",
                                               "IQ3_XXS",
                                               "IQ1_S",
                                               "IQ4_NL",
                                               "IQ3_S",
                                               "IQ2_S",
                                               "IQ4_XS",
                                               "I8",
                                               "I16",
                                               "I32",
                                               "I64",
                                               "F64",
                                               "IQ1_M",
                                               "BF16",
                                               "Q4_0_4_4",
                                               "Q4_0_4_8",
                                               "Q4_0_8_8",
                                               "TQ1_0",
                                               "TQ2_0",
                                               "IQ4_NL_4_4",
                                               "IQ4_NL_4_8",
                                               "IQ4_NL_8_8",
                                               "MXFP4"};
  return id < std::size(names) ? names[id] : "unknown";
}

ModelFile parse_gguf(const std::string& path, std::shared_ptr<const MappedFile> map) {
  ByteReader r(path, map->data(), map->size());
  ModelFile m;
  m.path = path;
  m.format = FileFormat::gguf;
  m.files = {path};
  const std::string_view magic = r.read_bytes(4, "magic");
  if (magic != "GGUF") {
    core::throw_error(path, ": magic: expected \"GGUF\", found \"", printable(magic),
                      "\" (not a GGUF file)");
  }
  m.version = r.read<uint32_t>("version");
  if (m.version != 2 && m.version != 3) {
    core::throw_error(
        path, ": version: expected 2 or 3, found ", m.version,
        m.version == 1 ? " (GGUF v1 is obsolete: convert it again with llama.cpp)" : "");
  }
  const auto n_tensors = r.read<uint64_t>("tensor count");
  const auto n_kv = r.read<uint64_t>("metadata count");
  if (n_kv > r.remaining() / 13) {
    core::throw_error(path, ": metadata count: expected at most ", r.remaining() / 13,
                      " for a file of ", map->size(), " bytes, found ", n_kv);
  }
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = read_string(r, core::concat("metadata key #", i));
    if (!valid_utf8(key)) {
      core::throw_error(path, ": metadata key #", i, ": expected UTF-8, found \"", printable(key),
                        "\"");
    }
    if (m.metadata.contains(key)) core::throw_error(path, ": metadata '", key, "' is duplicated");
    const auto t = r.read<uint32_t>(key + " (type)");
    if (t > static_cast<uint32_t>(Type::f64)) {
      core::throw_error(path, ": metadata '", key, "' type: expected 0..12, found ", t);
    }
    MetaValue v = read_value(r, static_cast<Type>(t), key, 0);
    m.metadata.set(std::move(key), std::move(v));
  }
  m.alignment = kDefaultAlignment;
  if (const MetaValue* a = m.metadata.find("general.alignment")) {
    if (a->type() != Type::u32) {
      core::throw_error(path, ": general.alignment: expected type u32, found ",
                        meta_type_name(a->type()));
    }
    const uint64_t al = a->raw_bits();
    if (al == 0 || (al & (al - 1)) != 0) {
      core::throw_error(path, ": general.alignment: expected a power of two, found ", al);
    }
    m.alignment = al;
  }
  if (n_tensors > r.remaining() / 24) {
    core::throw_error(path, ": tensor count: expected at most ", r.remaining() / 24,
                      " for the bytes left, found ", n_tensors);
  }
  std::unordered_set<std::string> names;
  std::vector<uint64_t> rel_offsets;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    TensorInfo t;
    t.name = read_string(r, core::concat("tensor #", i, " name"));
    if (!names.insert(t.name).second) {
      core::throw_error(path, ": tensor '", t.name, "' is duplicated");
    }
    const auto n_dims = r.read<uint32_t>(t.name + " n_dims");
    if (n_dims > kMaxDims) {
      core::throw_error(path, ": tensor '", t.name, "' n_dims: expected at most ", kMaxDims,
                        ", found ", n_dims);
    }
    std::vector<int64_t> ne(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) ne[d] = r.read<int64_t>(t.name + " ne");
    t.shape.assign(ne.rbegin(), ne.rend());
    const auto type_id = r.read<uint32_t>(t.name + " type");
    const auto type = tensor_type_from_ggml(type_id);
    if (!type) {
      core::throw_error(path, ": tensor '", t.name, "' type: expected F32, F16, BF16, I32, ",
                        "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL or ",
                        "IQ4_XS, found ", ggml_type_name(type_id), " (ggml type ", type_id,
                        "); re-quantise the model to one of those (e.g. Q4_K_M) or convert it ",
                        "to F16");
    }
    t.type = *type;
    rel_offsets.push_back(r.read<uint64_t>(t.name + " offset"));
    t.n_bytes = tensor_bytes(path, t.name, t.type, t.shape);
    m.tensors.push_back(std::move(t));
  }
  const uint64_t data_begin = (r.pos() + m.alignment - 1) / m.alignment * m.alignment;
  if (!m.tensors.empty() && data_begin > map->size()) {
    core::throw_error(path, ": tensor data: expected to start at byte ", data_begin,
                      ", found a file of ", map->size(), " bytes");
  }
  std::vector<TensorInfo*> ptrs;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    TensorInfo& t = m.tensors[i];
    if (rel_offsets[i] > map->size()) {
      core::throw_error(path, ": tensor '", t.name, "' (", tensor_type_name(t.type), ", ",
                        t.n_bytes, " bytes) offset: expected at most ", map->size() - data_begin,
                        ", found ", rel_offsets[i], " (a truncated or corrupt file)");
    }
    t.offset = data_begin + rel_offsets[i];
    ptrs.push_back(&t);
  }
  validate_tensor_layout(path, ptrs, data_begin, std::max<uint64_t>(data_begin, map->size()),
                         m.alignment);
  for (TensorInfo& t : m.tensors) t.data = map->data() + t.offset;
  m.storage.push_back(std::move(map));
  align_tensor_data(ptrs, m.storage);
  m.config = config_from_gguf(m);
  return m;
}

namespace {

void put_bytes(std::vector<std::byte>& out, const void* p, size_t n) {
  const auto* b = static_cast<const std::byte*>(p);
  out.insert(out.end(), b, b + n);
}
template <typename T>
void put(std::vector<std::byte>& out, T v) {
  put_bytes(out, &v, sizeof(T));
}
void put_string(std::vector<std::byte>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  put_bytes(out, s.data(), s.size());
}

void put_value(std::vector<std::byte>& out, const MetaValue& v) {
  const uint64_t b = v.raw_bits();
  switch (v.type()) {
    case Type::u8:
    case Type::i8:
    case Type::boolean:
      put<uint8_t>(out, uint8_t(b));
      break;
    case Type::u16:
    case Type::i16:
      put<uint16_t>(out, uint16_t(b));
      break;
    case Type::u32:
    case Type::i32:
    case Type::f32:
      put<uint32_t>(out, uint32_t(b));
      break;
    case Type::u64:
    case Type::i64:
    case Type::f64:
      put<uint64_t>(out, b);
      break;
    case Type::string:
      put_string(out, v.as_string());
      break;
    case Type::array:
      put<uint32_t>(out, static_cast<uint32_t>(v.elem_type()));
      put<uint64_t>(out, v.as_array().size());
      for (const MetaValue& item : v.as_array()) put_value(out, item);
      break;
  }
}

void pad_to(std::vector<std::byte>& out, uint64_t alignment) {
  out.resize((out.size() + alignment - 1) / alignment * alignment, std::byte{0});
}

uint64_t padded(uint64_t n, uint64_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

// Magic, version, counts and the key/value section.
void put_header(std::vector<std::byte>& out, uint32_t version, uint64_t n_tensors,
                const Metadata& meta) {
  put_bytes(out, "GGUF", 4);
  put<uint32_t>(out, version);
  put<uint64_t>(out, n_tensors);
  put<uint64_t>(out, meta.size());
  for (const auto& [k, v] : meta.entries()) {
    put_string(out, k);
    put<uint32_t>(out, static_cast<uint32_t>(v.type()));
    put_value(out, v);
  }
}

// One tensor-info entry; `shape` row-major (GGUF stores ne[], innermost first).
void put_tensor_info(std::vector<std::byte>& out, const std::string& name, TensorType type,
                     const std::vector<int64_t>& shape, uint64_t offset) {
  put_string(out, name);
  put<uint32_t>(out, static_cast<uint32_t>(shape.size()));
  for (auto it = shape.rbegin(); it != shape.rend(); ++it) put<int64_t>(out, *it);
  put<uint32_t>(out, formats::ggml_type_id(type));
  put<uint64_t>(out, offset);
}

}  // namespace
}  // namespace qkv::formats

namespace qkv {

using namespace formats;  // NOLINT: the writer helpers above

ModelFile read_gguf(const std::string& path) {
  return formats::parse_gguf(path, std::make_shared<const MappedFile>(path));
}

ModelFile read_gguf_bytes(std::span<const std::byte> bytes, const std::string& name) {
  return formats::parse_gguf(name, std::make_shared<const MappedFile>(name, bytes));
}

GgufWriter::GgufWriter(uint32_t version, uint64_t alignment)
    : version_(version), alignment_(alignment) {
  if (version != 2 && version != 3) core::throw_invalid("GgufWriter: version must be 2 or 3");
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    core::throw_invalid("GgufWriter: alignment must be a power of two, found ", alignment);
  }
  if (alignment != 32) {
    meta_.set("general.alignment",
              MetaValue::make_uint(MetaValue::Type::u32, static_cast<uint32_t>(alignment)));
  }
}

void GgufWriter::set(std::string key, MetaValue value) {
  if (key == "general.alignment") {
    const uint64_t al = value.raw_bits();
    if (value.type() != MetaValue::Type::u32 || al == 0 || (al & (al - 1)) != 0) {
      core::throw_invalid("GgufWriter: general.alignment must be a u32 power of two");
    }
    alignment_ = al;
  }
  meta_.set(std::move(key), std::move(value));
}

void GgufWriter::add_tensor(std::string name, TensorType type, std::vector<int64_t> shape,
                            std::span<const std::byte> data) {
  if (shape.size() > 4) core::throw_invalid("GgufWriter: tensor '", name, "' has > 4 dims");
  const uint64_t n = formats::tensor_bytes("GgufWriter", name, type, shape);
  if (n != data.size()) {
    core::throw_invalid("GgufWriter: tensor '", name, "' data: expected ", n, " bytes, found ",
                        data.size());
  }
  for (const Pending& p : tensors_) {
    if (p.name == name) core::throw_invalid("GgufWriter: tensor '", name, "' added twice");
  }
  tensors_.push_back({std::move(name), type, std::move(shape), {data.begin(), data.end()}});
}

std::vector<std::byte> GgufWriter::to_bytes() const {
  std::vector<std::byte> out;
  put_header(out, version_, tensors_.size(), meta_);
  uint64_t offset = 0;
  for (const Pending& t : tensors_) {
    put_tensor_info(out, t.name, t.type, t.shape, offset);
    offset += padded(t.data.size(), alignment_);
  }
  // Like gguf-py: no padding at all when there is no tensor data.
  if (!tensors_.empty()) {
    pad_to(out, alignment_);
    for (const Pending& t : tensors_) {
      put_bytes(out, t.data.data(), t.data.size());
      pad_to(out, alignment_);
    }
  }
  return out;
}

void GgufWriter::write(const std::string& path) const {
  const std::vector<std::byte> bytes = to_bytes();
  core::write_output_file(path, std::span<const std::byte>(bytes));
}

GgufWriter gguf_writer_from(const ModelFile& m) {
  // general.alignment, when present, is set in its file position by the loop.
  GgufWriter w(m.format == FileFormat::gguf && m.version == 2 ? 2 : 3, 32);
  for (const auto& [k, v] : m.metadata.entries()) w.set(k, v);
  for (const TensorInfo& t : m.tensors) w.add_tensor(t.name, t.type, t.shape, t.bytes());
  return w;
}

void write_gguf_streaming(const std::string& path, const Metadata& metadata,
                          const std::vector<GgufTensorDecl>& tensors, const GgufTensorFill& fill) {
  uint64_t alignment = kDefaultAlignment;
  if (const MetaValue* a = metadata.find("general.alignment")) {
    alignment = a->raw_bits();
    if (a->type() != Type::u32 || alignment == 0 || (alignment & (alignment - 1)) != 0) {
      core::throw_invalid(path, ": general.alignment must be a u32 power of two, found ",
                          a->to_string());
    }
  }
  // Validate every declaration before a byte is written.
  std::vector<uint64_t> sizes;
  sizes.reserve(tensors.size());
  std::unordered_set<std::string_view> names;
  uint64_t largest = 0;
  for (const GgufTensorDecl& t : tensors) {
    if (t.shape.size() > 4) core::throw_invalid(path, ": tensor '", t.name, "' has > 4 dims");
    if (!names.insert(t.name).second) {
      core::throw_invalid(path, ": tensor '", t.name, "' declared twice");
    }
    sizes.push_back(formats::tensor_bytes(path, t.name, t.type, t.shape));
    largest = std::max(largest, sizes.back());
  }

  std::vector<std::byte> header;
  put_header(header, 3, tensors.size(), metadata);
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    put_tensor_info(header, tensors[i].name, tensors[i].type, tensors[i].shape, offset);
    offset += padded(sizes[i], alignment);
  }
  // Like GgufWriter (and gguf-py): no padding at all when there is no tensor data.
  if (!tensors.empty()) pad_to(header, alignment);

  // Written to a temporary file and renamed (or directly to a device or FIFO); an exception from
  // `fill` or a failed write leaves `path` as it was.
  core::OutputFile f(path);
  f.write(header.data(), header.size());
  std::vector<std::byte> buf(static_cast<size_t>(padded(largest, alignment)));
  for (size_t i = 0; i < tensors.size(); ++i) {
    fill(i, std::span<std::byte>(buf.data(), static_cast<size_t>(sizes[i])));
    const uint64_t n = padded(sizes[i], alignment);
    std::fill(buf.begin() + static_cast<std::ptrdiff_t>(sizes[i]),
              buf.begin() + static_cast<std::ptrdiff_t>(n), std::byte{0});
    f.write(buf.data(), n);
  }
  f.commit();
}

}  // namespace qkv
