// Shared by the explain exporters (JSON, HTML): not part of the public API.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "qkv/explain.h"

namespace qkv::explain_detail {

// ids, tokens, word ids, selected layers and heads, the model line and the memory note.
nlohmann::json tokens_json(const Explanation& e);
// Per-head look scores and the rollout [T, T]; maps: [layer_sel * head_sel] dense [T, T]. The
// rollout goes to *rollout when given (the HTML report encodes it), else into the JSON.
nlohmann::json analyses_json(const Explanation& e, const std::vector<std::vector<float>>& maps,
                             std::vector<float>* rollout = nullptr);
std::vector<std::vector<float>> all_maps(const Explanation& e);
// One head's look scores as the report and the JSON export list them.
nlohmann::json head_scores_json(int layer, int head, const LookScores& s);
std::vector<double> rounded(const std::vector<float>& v);  // 6 decimals, for compact JSON
std::string dump(const nlohmann::json& j, int indent);     // invalid UTF-8 replaced
// The magic, version, length and header of a float32 C-order NPY 1.0 file of this shape, padded
// so that the data starts at a multiple of 64 bytes.
std::string npy_header(const std::vector<int64_t>& shape);
// A vocabulary entry's bytes, or "#id" for a model without a tokenizer (attribution targets,
// logit-lens tokens).
std::string token_text(const Model& model, int32_t id);

}  // namespace qkv::explain_detail
