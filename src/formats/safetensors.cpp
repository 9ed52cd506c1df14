// safetensors: u64 header length N, N bytes of JSON
//   {"NAME": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value"}}
// then the data; offsets are relative to the byte after the header. Sharded checkpoints list
// the shard of each tensor in model.safetensors.index.json ("weight_map").
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/file_io.h"
#include "formats/formats_internal.h"
#include "formats/gguf_internal.h"
#include "formats/mapped_file.h"

namespace qkv::formats {

using nlohmann::json;

namespace {

constexpr uint64_t kMaxHeader = 100u << 20;  // the safetensors spec's own limit (100 MB)

std::optional<TensorType> safetensors_dtype(const std::string& s) {
  if (s == "F32") return TensorType::f32;
  if (s == "F16") return TensorType::f16;
  if (s == "BF16") return TensorType::bf16;
  if (s == "I32") return TensorType::i32;
  return std::nullopt;
}

int64_t json_uint(const json& j, const std::string& file, const std::string& field) {
  if (!j.is_number_unsigned() && !(j.is_number_integer() && j.get<int64_t>() >= 0)) {
    core::throw_error(file, ": ", field, ": expected a non-negative integer, found ", j.dump());
  }
  const uint64_t v = j.get<uint64_t>();
  if (v > static_cast<uint64_t>(INT64_MAX)) {
    core::throw_error(file, ": ", field, ": expected below 2^63, found ", v);
  }
  return static_cast<int64_t>(v);
}

// The format's layout rule: the tensors, in offset order, tile the data section exactly, from
// offset 0 to its last byte, with no gap. A file that breaks it was cut, padded or written with a
// wrong header length, and reading it anyway shifts every tensor (a silent wrong answer).
void check_contiguous(const std::string& path, std::vector<TensorInfo*> tensors,
                      uint64_t data_begin, uint64_t file_size) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->offset != b->offset ? a->offset < b->offset : a->n_bytes < b->n_bytes;
  });
  uint64_t end = 0;  // relative to data_begin
  for (const TensorInfo* t : tensors) {
    const uint64_t begin = t->offset - data_begin;
    if (begin != end) {
      core::throw_error(path, ": tensor '", t->name, "' data_offsets begin at ", begin,
                        ": expected ", end, " (the tensors' data must follow each other from ",
                        "offset 0 without gaps)");
    }
    end = begin + t->n_bytes;
  }
  const uint64_t data_size = file_size - data_begin;
  if (data_size != end) {
    core::throw_error(path, ": data section of ", data_size, " bytes: expected ", end,
                      " bytes, the end of the last tensor (a wrong header length, or a truncated ",
                      "or padded file)");
  }
}

}  // namespace

std::string json_reason(std::string_view what) {
  if (!what.empty() && what.front() == '[') {
    if (const size_t end = what.find("] "); end != std::string_view::npos)
      what.remove_prefix(end + 2);
  }
  return std::string(what);
}

json parse_json_text(std::string_view text, const std::string& file) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    // Where, as line and column of the file, and why, without nlohmann's exception id.
    const size_t at = std::min<size_t>(e.byte > 0 ? e.byte - 1 : 0, text.size());
    size_t line = 1, column = 1;
    for (size_t i = 0; i < at; ++i) {
      column = text[i] == '\n' ? 1 : column + 1;
      line += text[i] == '\n';
    }
    std::string why = json_reason(e.what());
    if (const size_t colon = why.find(": ");
        why.rfind("parse error", 0) == 0 && colon != std::string::npos) {
      why.erase(0, colon + 2);
    }
    core::throw_error(file, ": invalid JSON at line ", line, ", column ", column, ": ", why);
  } catch (const json::exception& e) {
    core::throw_error(file, ": invalid JSON: ", json_reason(e.what()));
  }
}

json read_json_file(const std::string& path) {
  MappedFile f(path);
  return parse_json_text(
      std::string_view(reinterpret_cast<const char*>(f.data()), static_cast<size_t>(f.size())),
      path);
}

namespace {

void parse_safetensors_checked(ModelFile& m, const std::string& path,
                               std::shared_ptr<const MappedFile> map, int file_index) {
  ByteReader r(path, map->data(), map->size());
  const auto n = r.read<uint64_t>("header length");
  if (n > r.remaining() || n > kMaxHeader) {
    core::throw_error(path, ": header length: expected at most ",
                      std::min<uint64_t>(r.remaining(), kMaxHeader), " bytes, found ", n,
                      " (not a safetensors file, or truncated)");
  }
  const std::string_view text = r.read_bytes(n, "header");
  const json header = parse_json_text(text, path);
  if (!header.is_object()) {
    core::throw_error(path, ": header: expected a JSON object, found ", header.type_name());
  }
  // The header's first byte is '{' (the reference implementation's rule, no leading blanks), so
  // a header length a few bytes off is caught here or by check_contiguous's size check.
  if (text.front() != '{') {
    core::throw_error(path, ": header: expected '{' right after the 8-byte length, found ",
                      json(std::string(1, text.front())).dump(), " (a wrong header length)");
  }
  const uint64_t data_begin = 8 + n;
  std::vector<TensorInfo*> ptrs;
  const size_t first = m.tensors.size();
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        core::throw_error(path, ": __metadata__: expected an object, found ", entry.type_name());
      }
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) {
          core::throw_error(path, ": __metadata__.", k, ": expected a string, found ",
                            v.type_name());
        }
        m.metadata.set(k, MetaValue::make_string(v.get<std::string>()));
      }
      continue;
    }
    const std::string field = "tensor '" + name + "'";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets")) {
      core::throw_error(path, ": ", field,
                        ": expected an object with dtype, shape and data_offsets, found ",
                        entry.dump().substr(0, 80));
    }
    const json& dt = entry["dtype"];
    if (!dt.is_string()) core::throw_error(path, ": ", field, " dtype: expected a string");
    const auto type = safetensors_dtype(dt.get<std::string>());
    if (!type) {
      core::throw_error(path, ": ", field, " dtype: expected F32, F16, BF16 or I32, found ",
                        dt.get<std::string>(), " (convert the checkpoint to one of these)");
    }
    const json& shape = entry["shape"];
    const json& offs = entry["data_offsets"];
    if (!shape.is_array() || shape.size() > 8) {
      core::throw_error(path, ": ", field, " shape: expected an array of at most 8 sizes");
    }
    if (!offs.is_array() || offs.size() != 2) {
      core::throw_error(path, ": ", field, " data_offsets: expected [begin, end], found ",
                        offs.dump().substr(0, 80));
    }
    TensorInfo t;
    t.name = name;
    t.type = *type;
    t.file_index = file_index;
    for (const json& d : shape) t.shape.push_back(json_uint(d, path, field + " shape"));
    t.n_bytes = tensor_bytes(path, name, t.type, t.shape);
    const int64_t b = json_uint(offs[0], path, field + " data_offsets[0]");
    const int64_t e = json_uint(offs[1], path, field + " data_offsets[1]");
    if (e < b || static_cast<uint64_t>(e - b) != t.n_bytes) {
      core::throw_error(path, ": ", field, " data_offsets [", b, ", ", e, "]: expected ", t.n_bytes,
                        " bytes for ", tensor_type_name(t.type), " shape ", json(t.shape).dump(),
                        ", found ", e - b);
    }
    if (static_cast<uint64_t>(b) > map->size()) {
      core::throw_error(path, ": ", field, " data_offsets[0]: expected at most ",
                        map->size() - data_begin, ", found ", b);
    }
    t.offset = data_begin + static_cast<uint64_t>(b);
    if (m.find_tensor(name) != nullptr) {
      core::throw_error(path, ": tensor '", name, "' appears twice (in this file or two shards)");
    }
    m.tensors.push_back(std::move(t));
  }
  for (size_t i = first; i < m.tensors.size(); ++i) ptrs.push_back(&m.tensors[i]);
  validate_tensor_layout(path, ptrs, data_begin, map->size(), 0);
  check_contiguous(path, ptrs, data_begin, map->size());
  for (size_t i = first; i < m.tensors.size(); ++i) {
    m.tensors[i].data = map->data() + m.tensors[i].offset;
  }
  m.files.push_back(path);
  m.storage.push_back(std::move(map));
  align_tensor_data(ptrs, m.storage);
}

}  // namespace

void parse_safetensors_into(ModelFile& m, const std::string& path,
                            std::shared_ptr<const MappedFile> map, int file_index) {
  with_json_errors(path, [&] { parse_safetensors_checked(m, path, std::move(map), file_index); });
}

}  // namespace qkv::formats

namespace qkv {

namespace {

ModelFile read_safetensors_checked(const std::string& path) {
  namespace fs = std::filesystem;
  ModelFile m;
  m.path = path;
  m.format = FileFormat::safetensors;
  if (path.size() >= 5 && path.substr(path.size() - 5) == ".json") {
    const nlohmann::json index = formats::read_json_file(path);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      core::throw_error(path, ": weight_map: expected an object mapping tensor -> shard file");
    }
    if (index.contains("metadata") && index["metadata"].is_object()) {
      for (const auto& [k, v] : index["metadata"].items()) {
        m.metadata.set("index." + k, v.is_string() ? MetaValue::make_string(v.get<std::string>())
                                                   : MetaValue::make_string(v.dump()));
      }
    }
    std::map<std::string, std::vector<std::string>> shards;  // shard -> tensors it must hold
    for (const auto& [tensor, shard] : index["weight_map"].items()) {
      if (!shard.is_string()) {
        core::throw_error(path, ": weight_map['", tensor, "']: expected a file name");
      }
      const std::string s = shard.get<std::string>();
      if (s.empty() || s.find('/') != std::string::npos || s.find("..") != std::string::npos) {
        core::throw_error(path, ": weight_map['", tensor,
                          "']: expected a file name in the same folder, found \"", s, "\"");
      }
      shards[s].push_back(tensor);
    }
    const fs::path dir = fs::path(path).parent_path();
    int index_no = 0;
    for (const auto& [shard, names] : shards) {
      const std::string sp = (dir / shard).string();
      formats::parse_safetensors_into(m, sp, std::make_shared<const MappedFile>(sp), index_no++);
      for (const std::string& n : names) {
        const TensorInfo* t = m.find_tensor(n);
        if (t == nullptr || m.files[t->file_index] != sp) {
          core::throw_error(path, ": weight_map['", n, "']: expected in ", shard, ", found ",
                            t ? "in " + m.files[t->file_index] : "nowhere");
        }
      }
    }
    return m;
  }
  formats::parse_safetensors_into(m, path, std::make_shared<const MappedFile>(path), 0);
  return m;
}

}  // namespace

ModelFile read_safetensors(const std::string& path) {
  return formats::with_json_errors(path, [&] { return read_safetensors_checked(path); });
}

ModelFile read_safetensors_bytes(std::span<const std::byte> bytes, const std::string& name) {
  ModelFile m;
  m.path = name;
  m.format = FileFormat::safetensors;
  formats::parse_safetensors_into(m, name, std::make_shared<const MappedFile>(name, bytes), 0);
  return m;
}

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, std::string>>& metadata,
                       const std::vector<TensorInfo>& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const TensorInfo& t : tensors) {
    if (tensor_type_is_quantized(t.type)) {
      core::throw_invalid(path, ": tensor '", t.name, "': safetensors has no ",
                          tensor_type_name(t.type), " type");
    }
    static constexpr const char* names[] = {"F32", "F16", "BF16", "", "I32"};
    header[t.name] = {{"dtype", names[static_cast<int>(t.type)]},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.n_bytes}}};
    offset += t.n_bytes;
  }
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');  // data starts 8-byte aligned
  core::OutputFile f(path);
  const uint64_t n = text.size();
  f.write(&n, 8);
  f.write(text);
  for (const TensorInfo& t : tensors) f.write(t.data, t.n_bytes);
  f.commit();
}

}  // namespace qkv
