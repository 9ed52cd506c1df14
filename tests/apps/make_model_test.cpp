// `qkv make-model` end to end: runs the binary, opens what it wrote with qkv::open_model and checks
// the tensor table, the metadata, the hyper-parameters, the tokenizer and the weights' statistics
// against what llama.cpp's converter writes for GPT-2 and LLaMA; the same seed gives the same
// bytes, another seed other bytes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/shared_data.h"
#include "qkv/model.h"
#include "qkv/model_file.h"
#include "qkv/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using qkv::TensorType;

std::string temp_path(const std::string& name) {
  // One folder per process: CTest runs each test as its own process, two at a time, and they
  // would otherwise overwrite each other's log and model files.
  const fs::path dir =
      fs::path(testing::TempDir()) / ("qkv_make_model_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Runs `qkv make-model ARGS`; returns the exit code, the output in `log`.
int make_model(const std::string& args, std::string* log = nullptr) {
  const std::string out = temp_path("log.txt");
  const std::string cmd = std::string(QKV_BIN) + " make-model " + args + " > " + out + " 2>&1";
  const int rc = std::system(cmd.c_str());
  if (log) *log = read_text(out);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

struct Expected {
  std::string name;
  std::vector<int64_t> shape;
  bool matrix;  // stored in --dtype; else f32
};

// The tiny presets, spelled out independently of the command's own tensor list.
// gpt2 tiny: n_embd 64, 2 layers, 4 heads, n_ff 256, n_vocab 320, n_ctx 128.
// llama tiny: n_embd 64, 2 layers, 4 heads, 2 kv heads (head_dim 16), n_ff 160, n_vocab 384.
std::vector<Expected> expected_tensors(const std::string& arch) {
  std::vector<Expected> e;
  if (arch == "gpt2") {
    e.push_back({"token_embd.weight", {320, 64}, true});
    e.push_back({"position_embd.weight", {128, 64}, true});
    for (int l = 0; l < 2; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      e.push_back({b + "attn_norm.weight", {64}, false});
      e.push_back({b + "attn_norm.bias", {64}, false});
      e.push_back({b + "attn_qkv.weight", {192, 64}, true});
      e.push_back({b + "attn_qkv.bias", {192}, false});
      e.push_back({b + "attn_output.weight", {64, 64}, true});
      e.push_back({b + "attn_output.bias", {64}, false});
      e.push_back({b + "ffn_norm.weight", {64}, false});
      e.push_back({b + "ffn_norm.bias", {64}, false});
      e.push_back({b + "ffn_up.weight", {256, 64}, true});
      e.push_back({b + "ffn_up.bias", {256}, false});
      e.push_back({b + "ffn_down.weight", {64, 256}, true});
      e.push_back({b + "ffn_down.bias", {64}, false});
    }
    e.push_back({"output_norm.weight", {64}, false});
    e.push_back({"output_norm.bias", {64}, false});
  } else {
    e.push_back({"token_embd.weight", {384, 64}, true});
    for (int l = 0; l < 2; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      e.push_back({b + "attn_norm.weight", {64}, false});
      e.push_back({b + "attn_q.weight", {64, 64}, true});
      e.push_back({b + "attn_k.weight", {32, 64}, true});
      e.push_back({b + "attn_v.weight", {32, 64}, true});
      e.push_back({b + "attn_output.weight", {64, 64}, true});
      e.push_back({b + "ffn_norm.weight", {64}, false});
      e.push_back({b + "ffn_gate.weight", {160, 64}, true});
      e.push_back({b + "ffn_up.weight", {160, 64}, true});
      e.push_back({b + "ffn_down.weight", {64, 160}, true});
    }
    e.push_back({"output_norm.weight", {64}, false});
    e.push_back({"output.weight", {384, 64}, true});
  }
  return e;
}

int64_t meta_int(const qkv::ModelFile& m, const std::string& key) {
  return m.metadata.at(key).as_int(key);
}

struct Stats {
  double mean = 0, std = 0;
};
Stats stats(const std::vector<float>& x) {
  Stats s;
  for (float v : x) s.mean += v;
  s.mean /= double(x.size());
  for (float v : x) s.std += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(s.std / double(x.size()));
  return s;
}

struct Case {
  std::string arch, dtype;
};

class MakeModel : public testing::TestWithParam<Case> {};

TEST_P(MakeModel, NamesShapesMetadataAndTokenizer) {
  const auto [arch, dtype] = GetParam();
  const std::string path = temp_path(arch + "-" + dtype + ".gguf");
  std::string log;
  ASSERT_EQ(
      make_model("--arch " + arch + " --preset tiny --dtype " + dtype + " --seed 7 -o " + path,
                 &log),
      0)
      << log;
  const qkv::ModelFile m = qkv::open_model(path);
  const TensorType wtype = dtype == "f32"    ? TensorType::f32
                           : dtype == "f16"  ? TensorType::f16
                           : dtype == "bf16" ? TensorType::bf16
                                             : TensorType::q8_0;

  // Tensor table: names, order, shapes, types.
  const std::vector<Expected> want = expected_tensors(arch);
  ASSERT_EQ(m.tensors.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(m.tensors[i].name, want[i].name);
    EXPECT_EQ(m.tensors[i].shape, want[i].shape) << want[i].name;
    EXPECT_EQ(m.tensors[i].type, want[i].matrix ? wtype : TensorType::f32) << want[i].name;
  }

  // Metadata, as convert_hf_to_gguf.py writes it.
  const std::string a = arch + ".";
  EXPECT_EQ(m.metadata.at("general.architecture").as_string(), arch);
  EXPECT_FALSE(m.metadata.at("general.name").as_string().empty());
  EXPECT_EQ(meta_int(m, a + "block_count"), 2);
  EXPECT_EQ(meta_int(m, a + "context_length"), 128);
  EXPECT_EQ(meta_int(m, a + "embedding_length"), 64);
  EXPECT_EQ(meta_int(m, a + "attention.head_count"), 4);
  const int64_t file_type = dtype == "f32" ? 0 : dtype == "f16" ? 1 : dtype == "bf16" ? 32 : 7;
  EXPECT_EQ(meta_int(m, "general.file_type"), file_type);
  EXPECT_EQ(m.metadata.at(a + "block_count").type(), qkv::MetaValue::Type::u32);
  if (arch == "gpt2") {
    EXPECT_EQ(meta_int(m, a + "feed_forward_length"), 256);
    EXPECT_FLOAT_EQ(float(m.metadata.at(a + "attention.layer_norm_epsilon").as_float()), 1e-5f);
    EXPECT_FALSE(m.metadata.contains(a + "rope.dimension_count"));
  } else {
    EXPECT_EQ(meta_int(m, a + "feed_forward_length"), 160);
    EXPECT_EQ(meta_int(m, a + "attention.head_count_kv"), 2);
    EXPECT_FLOAT_EQ(float(m.metadata.at(a + "attention.layer_norm_rms_epsilon").as_float()), 1e-5f);
    EXPECT_EQ(meta_int(m, a + "rope.dimension_count"), 16);
    EXPECT_EQ(m.metadata.at(a + "rope.freq_base").as_float(), 10000.0);
    EXPECT_EQ(meta_int(m, a + "vocab_size"), 384);
  }

  // Hyper-parameters as the runtime sees them.
  const qkv::ModelConfig& c = m.config;
  EXPECT_EQ(c.architecture, arch);
  EXPECT_EQ(c.n_vocab, arch == "gpt2" ? 320 : 384);
  EXPECT_EQ(c.n_ctx, 128);
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_layer, 2);
  EXPECT_EQ(c.n_head, 4);
  EXPECT_EQ(c.n_head_kv, arch == "gpt2" ? 4 : 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.n_ff, arch == "gpt2" ? 256 : 160);
  EXPECT_FLOAT_EQ(float(c.norm_eps), 1e-5f);
  EXPECT_EQ(c.rope_theta, arch == "gpt2" ? 0.0 : 10000.0);
  EXPECT_EQ(c.tied_embeddings, arch == "gpt2");

  // The synthesised tokenizer is valid and round-trips text.
  const qkv::TokenizerSpec spec = qkv::tokenizer_spec_from_gguf(m);
  EXPECT_EQ(spec.tokens.size(), size_t(c.n_vocab));
  const qkv::Tokenizer tok(spec);
  const std::string text = "Hello world, the quick brown fox 12345!\n\xc3\xa9t\xc3\xa9";
  const std::vector<int32_t> ids = tok.encode(text, {.add_special = false});
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_LT(ids.size(), text.size()) << "generated pieces merge some bytes";
  if (arch == "gpt2") {
    EXPECT_EQ(spec.tokens[size_t(spec.eos)], "<|endoftext|>");
  } else {
    EXPECT_EQ(spec.bos, 1);
    EXPECT_EQ(spec.eos, 2);
  }

  // Weights: matrices N(0, 0.02^2), norm weights around 1. q8_0 / f16 / bf16 only round.
  const Stats w = stats(qkv::tensor_to_f32(m.tensor("blk.1.ffn_up.weight")));
  EXPECT_NEAR(w.mean, 0.0, 0.002);
  EXPECT_NEAR(w.std, 0.02, 0.001);
  const Stats g = stats(qkv::tensor_to_f32(m.tensor("output_norm.weight")));
  EXPECT_NEAR(g.mean, 1.0, 0.01);
  EXPECT_NEAR(g.std, 0.02, 0.006);
}

INSTANTIATE_TEST_SUITE_P(ArchDtype, MakeModel,
                         testing::Values(Case{"gpt2", "f32"}, Case{"gpt2", "f16"},
                                         Case{"gpt2", "bf16"}, Case{"gpt2", "q8_0"},
                                         Case{"llama", "f32"}, Case{"llama", "f16"},
                                         Case{"llama", "bf16"}, Case{"llama", "q8_0"}),
                         [](const auto& info) { return info.param.arch + "_" + info.param.dtype; });

TEST(MakeModelSeed, SameSeedSameBytesOtherSeedOtherBytes) {
  const std::string a = temp_path("seed-a.gguf"), b = temp_path("seed-b.gguf"),
                    c = temp_path("seed-c.gguf");
  const std::string args = "--arch llama --preset tiny --dtype f16 -o ";
  ASSERT_EQ(make_model(args + a + " --seed 3"), 0);
  ASSERT_EQ(make_model(args + b + " --seed 3"), 0);
  ASSERT_EQ(make_model(args + c + " --seed 4"), 0);
  EXPECT_EQ(read_text(a), read_text(b));
  const qkv::ModelFile ma = qkv::open_model(a), mc = qkv::open_model(c);
  EXPECT_EQ(ma.tensors.size(), mc.tensors.size());
  EXPECT_NE(qkv::tensor_to_f32(ma.tensor("token_embd.weight")),
            qkv::tensor_to_f32(mc.tensor("token_embd.weight")));
  // Tensors of one file are different streams, not copies.
  EXPECT_NE(qkv::tensor_to_f32(ma.tensor("blk.0.ffn_gate.weight")),
            qkv::tensor_to_f32(ma.tensor("blk.0.ffn_up.weight")));
}

TEST(MakeModelOverrides, ShapeOptionsOverrideThePreset) {
  const std::string path = temp_path("override.gguf");
  ASSERT_EQ(make_model("--arch llama --preset tiny --n-embd 96 --n-layer 3 --n-head 6 "
                       "--n-head-kv 3 --n-ff 128 --n-vocab 400 --n-ctx 64 -o " +
                       path),
            0);
  const qkv::ModelFile m = qkv::open_model(path);
  EXPECT_EQ(m.config.n_embd, 96);
  EXPECT_EQ(m.config.n_layer, 3);
  EXPECT_EQ(m.config.n_head, 6);
  EXPECT_EQ(m.config.n_head_kv, 3);
  EXPECT_EQ(m.config.n_ff, 128);
  EXPECT_EQ(m.config.n_vocab, 400);
  EXPECT_EQ(m.config.n_ctx, 64);
  EXPECT_EQ(m.tensor("blk.2.attn_k.weight").shape, (std::vector<int64_t>{48, 96}));
  EXPECT_EQ(m.tensor("output.weight").shape, (std::vector<int64_t>{400, 96}));
}

TEST(MakeModelVocab, CopiesTheTokenizerOfAVocabGguf) {
  QKV_REQUIRE_SHARED(vocab, "vocab-gguf/ggml-vocab-gpt-2.gguf");
  const std::string path = temp_path("gpt2-vocab.gguf");
  std::string log;
  ASSERT_EQ(make_model("--arch gpt2 --preset tiny --vocab " + vocab.string() + " -o " + path, &log),
            0)
      << log;
  const qkv::ModelFile m = qkv::open_model(path);
  const qkv::ModelFile v = qkv::read_gguf(vocab.string());
  EXPECT_EQ(m.config.n_vocab, 50257);
  EXPECT_EQ(m.tensor("token_embd.weight").shape, (std::vector<int64_t>{50257, 64}));
  for (const auto& [k, val] : v.metadata.entries()) {
    if (k.rfind("tokenizer.ggml.", 0) != 0) continue;
    const qkv::MetaValue* got = m.metadata.find(k);
    ASSERT_NE(got, nullptr) << k;
    EXPECT_EQ(got->to_string(4), val.to_string(4)) << k;
  }
  // A disagreeing --n-vocab is refused, naming both sizes.
  EXPECT_NE(make_model("--arch gpt2 --preset tiny --n-vocab 999 --vocab " + vocab.string() +
                           " -o " + temp_path("bad.gguf"),
                       &log),
            0);
  EXPECT_NE(log.find("999"), std::string::npos) << log;
  EXPECT_NE(log.find("50257"), std::string::npos) << log;
}

TEST(MakeModelVocab, RepliesEndAtTheTokensThatEndATurn) {
  // Model::end_of_generation_ids (what generate, chat and serve stop at) on random models with
  // llama.cpp's real vocabularies: EOS and the chat format's end-of-turn token, which is not EOS
  // (Qwen2: <|endoftext|> and <|im_end|>; Llama 3: <|end_of_text|> or <|eot_id|> and the other),
  // and never an ordinary token.
  struct Case {
    const char* vocab;
    const char* arch;
    std::vector<std::string> ends;
  };
  const Case cases[] = {{"ggml-vocab-qwen2.gguf", "qwen2", {"<|endoftext|>", "<|im_end|>"}},
                        {"ggml-vocab-llama-bpe.gguf", "llama", {"<|end_of_text|>", "<|eot_id|>"}}};
  for (const Case& c : cases) {
    QKV_REQUIRE_SHARED(vocab, std::string("vocab-gguf/") + c.vocab);
    const std::string path = temp_path(std::string(c.arch) + "-ends.gguf");
    std::string log;
    ASSERT_EQ(make_model(std::string("--arch ") + c.arch + " --n-ctx 64 --n-embd 32 --n-layer 1 " +
                             "--n-head 2 --n-ff 64 --vocab " + vocab.string() + " -o " + path,
                         &log),
              0)
        << log;
    const qkv::Model m = qkv::Model::load(path);
    const qkv::Tokenizer& tok = m.tokenizer();
    const std::vector<int32_t> ids = m.end_of_generation_ids();
    auto has = [&](int32_t id) { return std::find(ids.begin(), ids.end(), id) != ids.end(); };
    EXPECT_TRUE(has(tok.spec().eos)) << c.vocab;
    for (const std::string& end : c.ends) {
      const int32_t id = tok.find(end);
      ASSERT_GE(id, 0) << end;
      EXPECT_TRUE(has(id)) << c.vocab << " " << end;
    }
    for (const char* text : {"Hello", " the", "."}) {
      for (int32_t id : tok.encode(text, {.add_special = false})) EXPECT_FALSE(has(id)) << text;
    }
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  }
}

TEST(MakeModelErrors, NameTheOptionAndTheValue) {
  std::string log;
  const std::string out = temp_path("never.gguf");
  fs::remove(out);
  EXPECT_NE(make_model("--arch bert -o " + out, &log), 0);
  EXPECT_NE(log.find("--arch"), std::string::npos) << log;
  EXPECT_NE(make_model("--arch llama --preset gpt2-124m -o " + out, &log), 0);
  EXPECT_NE(log.find("--preset"), std::string::npos) << log;
  EXPECT_NE(make_model("--arch llama --dtype q4_0 -o " + out, &log), 0);
  EXPECT_NE(log.find("q4_0"), std::string::npos) << log;
  EXPECT_NE(
      make_model("--arch llama --dtype q8_0 --n-embd 48 --n-head 3 --n-head-kv 3 -o " + out, &log),
      0);
  EXPECT_NE(log.find("multiple of 32"), std::string::npos) << log;
  EXPECT_NE(make_model("--arch llama --n-head 4 --n-head-kv 3 -o " + out, &log), 0);
  EXPECT_NE(log.find("--n-head-kv"), std::string::npos) << log;
  EXPECT_NE(make_model("--arch gpt2 --n-vocab 100 -o " + out, &log), 0);
  EXPECT_NE(log.find("--n-vocab"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
