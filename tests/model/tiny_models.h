// Tiny random GGUF models of every family, written in the test (the shapes of `qkv make-model
// --preset tiny`, model/arch.cpp's tensor lists), for tests of what runs on top of the forward
// pass. Weights are seeded N(0, std²), norm weights 1 + N(0, std²); `std` is larger than a real
// model's initialisation so that attention is far from uniform and every path carries signal.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "qkv/convert.h"
#include "qkv/model.h"
#include "qkv/model_file.h"

namespace qkv::test {

struct TinySpec {
  Architecture arch = Architecture::llama;
  TensorType matrices = TensorType::f32;  // f32, f16 or q8_0 for the 2-D tensors
  double std = 0.15;
  uint32_t seed = 1;
};

inline ModelConfig tiny_config(Architecture a) {
  ModelConfig c;
  c.architecture = std::string(architecture_name(a));
  c.n_embd = 64;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_head_kv = 2;
  c.n_ff = 160;
  c.n_vocab = 96;
  c.n_ctx = 128;
  c.rope_theta = 1e4;
  c.norm_eps = 1e-5;
  switch (a) {
    case Architecture::gpt2:
      c.n_head_kv = 4;
      c.n_ff = 256;
      c.rope_theta = 0;
      c.tied_embeddings = true;
      break;
    case Architecture::qwen2:
      c.tied_embeddings = true;
      c.rope_theta = 1e6;
      break;
    case Architecture::qwen3:
      c.head_dim = 32;  // != n_embd / n_head, as Qwen 3 files state it
      break;
    case Architecture::gemma2:
      c.tied_embeddings = true;
      c.sliding_window = 8;  // short prompts already slide on layer 0
      c.attn_softcap = 50;
      c.final_softcap = 30;
      break;
    case Architecture::gemma3:
      c.tied_embeddings = true;
      c.n_layer = 3;
      c.head_dim = 32;
      c.sliding_window = 6;
      c.swa_pattern = 3;  // layers 0, 1 slide, layer 2 is global
      c.rope_theta = 1e6;
      c.rope_theta_swa = 1e4;
      break;
    case Architecture::bert:
      c.n_head_kv = 4;
      c.n_ff = 128;
      c.causal = false;
      break;
    default:
      break;
  }
  if (c.head_dim == 0) c.head_dim = c.n_embd / c.n_head;
  return c;
}

// Writes the model to the test's temporary directory and loads it.
inline Model make_tiny(const TinySpec& spec) {
  const ModelConfig c = tiny_config(spec.arch);
  GgufWriter w;
  w.set("general.architecture", MetaValue::make_string(c.architecture));
  Metadata md;
  set_gguf_arch_keys(spec.arch, c, md);
  for (const auto& [k, v] : md.entries()) w.set(k, v);
  std::mt19937 rng(spec.seed);
  std::normal_distribution<float> normal(0.f, static_cast<float>(spec.std));
  for (const GgufTensorEntry& e : gguf_tensor_list(spec.arch, c)) {
    int64_t count = 1;
    for (int64_t s : e.shape) count *= s;
    std::vector<float> v(static_cast<size_t>(count));
    for (float& x : v) x = e.rope_freqs ? 1.f : (e.norm_weight ? 1.f : 0.f) + normal(rng);
    std::vector<std::byte> bytes;
    TensorType type = e.shape.size() == 2 ? spec.matrices : TensorType::f32;
    if (type == TensorType::q8_0 && e.shape.back() % 32 != 0) type = TensorType::f32;
    if (type == TensorType::f32) {
      bytes.resize(v.size() * 4);
      std::memcpy(bytes.data(), v.data(), bytes.size());
    } else if (type == TensorType::f16) {
      bytes.resize(v.size() * 2);
      for (size_t i = 0; i < v.size(); ++i) {
        const uint16_t h = core::f32_to_f16(v[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
    } else {
      bytes.resize(static_cast<size_t>(count / 32 * 34));
      quantize_q8_0(v.data(), count, bytes.data());
    }
    w.add_tensor(e.name, type, e.shape, bytes);
  }
  const std::string path = ::testing::TempDir() + "/qkv_tiny_" + c.architecture + "_" +
                           std::string(tensor_type_name(spec.matrices)) + "_" +
                           std::to_string(spec.seed) + ".gguf";
  w.write(path);
  return Model::load(path);
}

}  // namespace qkv::test
