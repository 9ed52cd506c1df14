// Shared by the explain exporters (JSON, HTML): not part of the public API.
#pragma once

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
std::vector<double> rounded(const std::vector<float>& v);  // 6 decimals, for compact JSON
std::string dump(const nlohmann::json& j, int indent);     // invalid UTF-8 replaced

}  // namespace qkv::explain_detail
