// Shared by the tests of the methods that explain a prediction: the built-in model
// (models/qkv-stories.gguf, GPT-2 trained by `qkv train`), the seed's Winograd sentence, and an
// observer that keeps one activation of every layer.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "qkv/observer.h"

namespace qkv::test {

inline const std::string kBuiltInModel = std::string(QKV_SOURCE_DIR) + "/models/qkv-stories.gguf";
inline constexpr const char* kWinograd =
    "The animal didn't cross the street because it was too tired. It";

// Keeps activation `name` of every layer (read-only), by layer.
class Keep : public Observer {
 public:
  explicit Keep(std::string name) : name_(std::move(name)) {}
  bool wants_activations() override { return true; }
  void on_activation(const ActivationEvent& e) override {
    if (e.name == name_) rows[e.layer].assign(e.data, e.data + e.n_rows * e.width);
  }
  std::map<int, std::vector<float>> rows;

 private:
  std::string name_;
};

}  // namespace qkv::test

#define QKV_REQUIRE_BUILTIN()                               \
  if (!std::filesystem::exists(::qkv::test::kBuiltInModel)) \
  GTEST_SKIP() << ::qkv::test::kBuiltInModel << " is not in this checkout"
