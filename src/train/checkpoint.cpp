#include "train/checkpoint.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <span>

#include "core/error.h"
#include "model/arch.h"
#include "qkv/error.h"
#include "qkv/model_file.h"

namespace qkv::learn {
namespace {

using T = MetaValue::Type;

MetaValue u32(int64_t v) {
  return MetaValue::make_uint(T::u32, static_cast<uint64_t>(v));
}
MetaValue u64(uint64_t v) {
  return MetaValue::make_uint(T::u64, v);
}
MetaValue f32(double v) {
  return MetaValue::make_float(T::f32, v);
}

std::span<const std::byte> bytes_of(const float* p, int64_t n) {
  return {reinterpret_cast<const std::byte*>(p), static_cast<size_t>(n) * sizeof(float)};
}

// GgufWriter::write replaces `path` atomically and leaves no temporary file when it fails.
void write_atomically(const GgufWriter& w, const std::string& path) {
  w.write(path);
}

void set_config(Metadata& md, const GptConfig& c) {
  model::set_gguf_hparams(Architecture::gpt2, c.model_config(), md);
}

}  // namespace

uint64_t tokenizer_hash(const TokenizerSpec& spec) {
  Metadata md;
  tokenizer_spec_to_gguf(spec, md);
  GgufWriter w;
  for (const auto& [k, v] : md.entries()) w.set(k, v);
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the GGUF bytes of the tokenizer keys
  for (const std::byte b : w.to_bytes()) h = (h ^ static_cast<uint8_t>(b)) * 0x100000001b3ull;
  return h == 0 ? 1 : h;
}

void write_model_gguf(const std::string& path, const Gpt& model, const TokenizerSpec& tokenizer,
                      int64_t step, double val_loss) {
  GgufWriter w;
  Metadata md;
  md.set("general.architecture", MetaValue::make_string("gpt2"));
  md.set("general.name", MetaValue::make_string("qkv train"));
  set_config(md, model.config());
  md.set("general.file_type", u32(0));  // all f32
  tokenizer_spec_to_gguf(tokenizer, md);
  md.set("qkv.train.step", u64(static_cast<uint64_t>(step)));
  if (std::isfinite(val_loss)) md.set("qkv.train.val_loss", f32(val_loss));
  for (const auto& [k, v] : md.entries()) w.set(k, v);
  for (const ParamTensor& t : model.tensors()) {
    w.add_tensor(t.name, TensorType::f32, t.shape,
                 bytes_of(model.params().data() + t.offset, t.size));
  }
  write_atomically(w, path);
}

void write_state_gguf(const std::string& path, const RunState& s, const Gpt& model,
                      AdamW& optimizer) {
  GgufWriter w;
  w.set("general.architecture", MetaValue::make_string("qkv-train-state"));
  Metadata md;
  set_config(md, s.config);
  for (const auto& [k, v] : md.entries()) w.set(k, v);
  w.set("gpt2.vocab_size", u32(s.config.n_vocab));
  w.set("qkv.train.seed", u64(s.seed));
  w.set("qkv.train.data_hash", u64(s.data_hash));
  w.set("qkv.train.tokenizer_hash", u64(s.tokenizer_hash));
  w.set("qkv.train.step", u64(static_cast<uint64_t>(s.step)));
  w.set("qkv.train.adam_step", u64(static_cast<uint64_t>(optimizer.step())));
  std::vector<MetaValue> steps, train, val;
  for (const LossPoint& p : s.history) {
    steps.push_back(MetaValue::make_uint(T::u64, static_cast<uint64_t>(p.step)));
    train.push_back(MetaValue::make_float(T::f64, p.train_loss));
    val.push_back(MetaValue::make_float(
        T::f64, p.val_loss ? *p.val_loss : std::numeric_limits<double>::quiet_NaN()));
  }
  w.set("qkv.train.history.step", MetaValue::make_array(T::u64, std::move(steps)));
  w.set("qkv.train.history.train_loss", MetaValue::make_array(T::f64, std::move(train)));
  w.set("qkv.train.history.val_loss", MetaValue::make_array(T::f64, std::move(val)));
  const int64_t n = model.n_params();
  w.add_tensor("params", TensorType::f32, {n}, bytes_of(model.params().data(), n));
  w.add_tensor("adam.m", TensorType::f32, {n}, bytes_of(optimizer.m().data(), n));
  w.add_tensor("adam.v", TensorType::f32, {n}, bytes_of(optimizer.v().data(), n));
  write_atomically(w, path);
}

RunState read_state_header(const std::string& path) {
  const ModelFile f = read_gguf(path);
  const Metadata& md = f.metadata;
  if (!md.contains("general.architecture") ||
      md.at("general.architecture").as_string() != "qkv-train-state") {
    throw Error(path + ": not a qkv training state (general.architecture is not qkv-train-state)");
  }
  RunState s;
  s.config.n_layer = md.at("gpt2.block_count").as_int();
  s.config.n_ctx = md.at("gpt2.context_length").as_int();
  s.config.n_embd = md.at("gpt2.embedding_length").as_int();
  s.config.n_head = md.at("gpt2.attention.head_count").as_int();
  s.config.n_vocab = md.at("gpt2.vocab_size").as_int();
  s.seed = static_cast<uint64_t>(md.at("qkv.train.seed").as_int());
  s.data_hash = static_cast<uint64_t>(md.at("qkv.train.data_hash").as_int());
  if (const MetaValue* h = md.find("qkv.train.tokenizer_hash")) s.tokenizer_hash = h->raw_bits();
  s.step = md.at("qkv.train.step").as_int();
  const auto& steps = md.at("qkv.train.history.step").as_array();
  const auto& train = md.at("qkv.train.history.train_loss").as_array();
  const auto& val = md.at("qkv.train.history.val_loss").as_array();
  if (steps.size() != train.size() || steps.size() != val.size()) {
    throw Error(path + ": loss history arrays differ in length");
  }
  for (size_t i = 0; i < steps.size(); ++i) {
    LossPoint p;
    p.step = steps[i].as_int();
    p.train_loss = train[i].as_float();
    const double v = val[i].as_float();
    if (!std::isnan(v)) p.val_loss = v;
    s.history.push_back(p);
  }
  return s;
}

void read_state_tensors(const std::string& path, Gpt& model, AdamW& optimizer) {
  const ModelFile f = read_gguf(path);
  const int64_t n = model.n_params();
  auto load = [&](const char* name, std::vector<float>& dst) {
    const TensorInfo& t = f.tensor(name);
    if (t.type != TensorType::f32 || t.n_elements() != n) {
      throw Error(path + ": tensor " + name + " has " + std::to_string(t.n_elements()) + " " +
                  std::string(tensor_type_name(t.type)) + " values, expected " + std::to_string(n) +
                  " f32 (a state of a different model)");
    }
    dst.resize(static_cast<size_t>(n));
    std::memcpy(dst.data(), t.data, static_cast<size_t>(n) * sizeof(float));
  };
  load("params", model.params());
  load("adam.m", optimizer.m());
  load("adam.v", optimizer.v());
  optimizer.set_step(f.metadata.at("qkv.train.adam_step").as_int());
}

}  // namespace qkv::learn
