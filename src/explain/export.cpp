// Exports of captured maps: NumPy .npy (+ tokens JSON) and one JSON document.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/file_io.h"
#include "core/utf8.h"
#include "explain_internal.h"
#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv {

namespace explain_detail {

nlohmann::json tokens_json(const Explanation& e) {
  nlohmann::json j;
  j["ids"] = e.ids;
  j["tokens"] = e.tokens;
  j["word_ids"] = e.word_ids;
  j["n_prompt"] = e.n_prompt;
  j["layers"] = e.capture.layers();
  j["heads"] = e.capture.heads();
  j["model"] = e.model;
  // Per model layer: the sliding window of a local layer, 0 for a global one.
  j["layer_windows"] = e.layer_windows;
  j["memory"] = e.capture.memory_note();
  if (const int64_t dropped = e.capture.dropped_rows(); dropped > 0) {
    j["dropped_rows"] = dropped;
    j["dropped_rows_note"] =
        "rows the capture's memory budget left out hold NaN in the exported arrays: they were "
        "not kept, they are not attention weights of 0";
  }
  return j;
}

// The [n, n] map of (li, hi) as exported: rows the budget dropped are NaN, never zeros that read
// as "attends to nothing".
std::vector<float> export_map(const AttentionCapture& c, size_t li, size_t hi, int64_t n) {
  std::vector<float> m = c.map(li, hi, n);
  if (c.dropped_rows() == 0) return m;
  for (int64_t pos = 0; pos < n; ++pos) {
    if (!c.has_row(li, hi, pos)) {
      std::fill(m.begin() + pos * n, m.begin() + (pos + 1) * n,
                std::numeric_limits<float>::quiet_NaN());
    }
  }
  return m;
}

nlohmann::json head_scores_json(int layer, int head, const LookScores& s) {
  return {
      {"layer", layer},   {"head", head},   {"entropy", s.entropy},     {"previous", s.previous},
      {"first", s.first}, {"self", s.self}, {"same_word", s.same_word}, {"induction", s.induction},
      {"rows", s.rows}};
}

nlohmann::json analyses_json(const Explanation& e, const std::vector<std::vector<float>>& maps,
                             std::vector<float>* rollout) {
  const int64_t n = static_cast<int64_t>(e.ids.size());
  const size_t nl = e.capture.layers().size(), nh = e.capture.heads().size();
  nlohmann::json heads = nlohmann::json::array();
  std::vector<float> layer_means;  // [nl, n, n]
  for (size_t l = 0; l < nl; ++l) {
    std::vector<float> all;
    for (size_t h = 0; h < nh; ++h) {
      const std::vector<float>& m = maps[l * nh + h];
      const LookScores s = look_scores(m, n, e.ids, e.word_ids);
      heads.push_back(head_scores_json(e.capture.layers()[l], e.capture.heads()[h], s));
      all.insert(all.end(), m.begin(), m.end());
    }
    const std::vector<float> mean = mean_map(all, static_cast<int64_t>(nh), n);
    layer_means.insert(layer_means.end(), mean.begin(), mean.end());
  }
  nlohmann::json out;
  out["heads"] = heads;
  std::vector<float> r = attention_rollout(layer_means, static_cast<int64_t>(nl), n);
  if (rollout) {
    *rollout = std::move(r);
  } else {
    out["rollout"] = rounded(r);
  }
  return out;
}

std::vector<double> rounded(const std::vector<float>& v) {
  std::vector<double> out;
  out.reserve(v.size());
  for (float x : v) out.push_back(std::round(double(x) * 1e6) / 1e6);
  return out;
}

std::vector<std::vector<float>> all_maps(const Explanation& e) {
  const int64_t n = static_cast<int64_t>(e.ids.size());
  std::vector<std::vector<float>> maps;
  for (size_t l = 0; l < e.capture.layers().size(); ++l) {
    for (size_t h = 0; h < e.capture.heads().size(); ++h) maps.push_back(e.capture.map(l, h, n));
  }
  return maps;
}

std::string token_text(const Model& model, int32_t id) {
  if (model.has_tokenizer()) return model.tokenizer().token_bytes(id);
  std::string text(1, '#');  // appends: GCC 12 misreads "#" + std::string as overlapping
  text += std::to_string(id);
  return text;
}

std::string npy_header(const std::vector<int64_t>& shape) {
  // NPY 1.0: magic, version, little-endian header length, a Python dict literal padded with
  // spaces so that the data starts at a multiple of 64 bytes, ending in '\n'.
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ", ";
  if (shape.size() > 1) dims.resize(dims.size() - 2);
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  const auto hlen = static_cast<uint16_t>(header.size());
  return std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(hlen & 0xff) +
         static_cast<char>(hlen >> 8) + header;
}

namespace {

// Whether any string in j (a key or a value) is not valid UTF-8.
bool has_invalid_utf8(const nlohmann::json& j) {
  if (j.is_string()) return !core::valid_utf8(j.get_ref<const std::string&>());
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      if (!core::valid_utf8(key) || has_invalid_utf8(value)) return true;
    }
  } else if (j.is_array()) {
    for (const auto& v : j) {
      if (has_invalid_utf8(v)) return true;
    }
  }
  return false;
}

// j with every string written by token_label (its invalid bytes as \xNN).
nlohmann::json with_token_text(const nlohmann::json& j) {
  if (j.is_string()) return token_label(j.get_ref<const std::string&>());
  if (j.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, value] : j.items()) out[token_label(key)] = with_token_text(value);
    return out;
  }
  if (j.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& v : j) out.push_back(with_token_text(v));
    return out;
  }
  return j;
}

}  // namespace

std::string dump(const nlohmann::json& j, int indent) {
  // Token texts of the methods' sections (the logit lens' top tokens, targets, a corrupted
  // prompt's tokens) are raw token bytes: their bytes outside a complete character are written as
  // \xNN, as Explanation::tokens holds them, and not as U+FFFD (which would hide which byte).
  constexpr auto replace = nlohmann::json::error_handler_t::replace;  // never reached
  if (has_invalid_utf8(j)) return with_token_text(j).dump(indent, ' ', false, replace);
  return j.dump(indent, ' ', false, replace);
}

}  // namespace explain_detail

using namespace explain_detail;

void write_npy(const std::string& path, const Explanation& e) {
  const int64_t n = static_cast<int64_t>(e.ids.size());
  const size_t nl = e.capture.layers().size(), nh = e.capture.heads().size();
  core::OutputFile f(path);
  const std::string header = npy_header({static_cast<int64_t>(nl), static_cast<int64_t>(nh), n, n});
  f.write(header);
  // One map at a time: the export never holds more than one dense [n, n] map beyond the capture.
  for (size_t l = 0; l < nl; ++l) {
    for (size_t h = 0; h < nh; ++h) {
      const std::vector<float> m = export_map(e.capture, l, h, n);
      f.write(m.data(), m.size() * sizeof(float));
    }
  }
  write_tokens_json(path + ".tokens.json", e);
  f.commit();
}

void write_tokens_json(const std::string& path, const Explanation& e) {
  core::write_output_file(path, dump(tokens_json(e), 1) + "\n");
}

void write_safetensors(const std::string& path, const Explanation& e) {
  const uint64_t n = e.ids.size();
  const uint64_t nl = e.capture.layers().size(), nh = e.capture.heads().size();
  const uint64_t map_bytes = nl * nh * n * n * 4;
  nlohmann::json h;
  h["attn"] = {{"dtype", "F32"}, {"shape", {nl, nh, n, n}}, {"data_offsets", {0, map_bytes}}};
  h["ids"] = {{"dtype", "I32"}, {"shape", {n}}, {"data_offsets", {map_bytes, map_bytes + 4 * n}}};
  // safetensors metadata values are strings: the token list and selections as JSON text.
  const nlohmann::json t = tokens_json(e);
  h["__metadata__"] = {{"tokens", dump(t["tokens"], -1)},
                       {"layers", dump(t["layers"], -1)},
                       {"heads", dump(t["heads"], -1)},
                       {"model", e.model},
                       {"memory", e.capture.memory_note()}};
  std::string header = dump(h, -1);
  header.append((8 - header.size() % 8) % 8, ' ');  // data 8-byte aligned
  core::OutputFile f(path);
  const uint64_t len = header.size();
  char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  f.write(len_bytes, 8);
  f.write(header);
  for (size_t l = 0; l < nl; ++l) {
    for (size_t hh = 0; hh < nh; ++hh) {
      const std::vector<float> m = export_map(e.capture, l, hh, static_cast<int64_t>(n));
      f.write(m.data(), m.size() * sizeof(float));
    }
  }
  f.write(e.ids.data(), e.ids.size() * sizeof(int32_t));
  f.commit();
}

std::string to_json(const Explanation& e) {
  const std::vector<std::vector<float>> maps = all_maps(e);
  nlohmann::json j = tokens_json(e);
  nlohmann::json jm = nlohmann::json::array();
  for (const auto& m : maps) jm.push_back(rounded(m));
  j["maps"] = std::move(jm);
  j["shape"] = {e.capture.layers().size(), e.capture.heads().size(), e.ids.size(), e.ids.size()};
  j["analyses"] = analyses_json(e, maps);
  return dump(j, -1);
}

}  // namespace qkv
