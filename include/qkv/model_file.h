// qkv — model files: GGUF (v2, v3), safetensors (single or sharded), llama2.c checkpoints and
// Hugging Face model folders, read into one description: metadata, hyper-parameters and named
// tensor views into memory-mapped bytes.
//
// Every offset, size and count is validated before any byte is used (offsets inside the file,
// element counts that multiply without overflow, no overlapping tensors, alignment). A malformed
// file raises qkv::Error naming the file, the field and the expected vs found value.
//
//   qkv::ModelFile m = qkv::open_model("model.gguf");
//   const qkv::TensorInfo& t = m.tensor("token_embd.weight");   // t.shape row-major
//   std::vector<float> w = qkv::tensor_to_f32(t);
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "qkv/error.h"
#include "qkv/tokenizer_spec.h"

namespace qkv {

// Storage types of tensors in model files: plain numbers, and ggml's quantized block formats
// (blocks of 32 or 256 values with their own scales; layouts in src/kernels/quant/blocks.h). Other
// types (IQ2_XXS, I8, F64, ...) are refused with an error naming the tensor and the type.
enum class TensorType : uint8_t {
  f32,
  f16,
  bf16,
  q8_0,
  i32,
  q4_0,
  q4_1,
  q5_0,
  q5_1,
  q2_k,
  q3_k,
  q4_k,
  q5_k,
  q6_k,
  iq4_nl,
  iq4_xs
};

std::string_view tensor_type_name(TensorType t);  // ggml's spelling: "F32", "Q4_K", "IQ4_XS"
// Elements per block (32 or 256 for the block formats, else 1) and bytes per block.
int64_t tensor_type_block(TensorType t);
int64_t tensor_type_block_bytes(TensorType t);
// Whether t is one of the quantized block formats (Q8_0 included).
bool tensor_type_is_quantized(TensorType t);

// A metadata value: a GGUF key/value, a safetensors __metadata__ string, or a config.json entry.
// Arrays may nest (GGUF allows arrays of arrays).
class MetaValue {
 public:
  // The GGUF type codes, in their order (0..12).
  enum class Type : uint8_t {
    u8,
    i8,
    u16,
    i16,
    u32,
    i32,
    f32,
    boolean,
    string,
    array,
    u64,
    i64,
    f64
  };

  MetaValue() = default;
  static MetaValue make_uint(Type t, uint64_t v);
  static MetaValue make_int(Type t, int64_t v);
  static MetaValue make_float(Type t, double v);
  static MetaValue make_bool(bool v);
  static MetaValue make_string(std::string v);
  static MetaValue make_array(Type elem, std::vector<MetaValue> items);

  Type type() const { return type_; }
  Type elem_type() const { return elem_; }  // for arrays
  bool is_integer() const;
  bool is_float() const { return type_ == Type::f32 || type_ == Type::f64; }

  // Checked accessors: throw qkv::Error naming `what` (the key) when the type does not fit.
  int64_t as_int(std::string_view what = "value") const;
  double as_float(std::string_view what = "value") const;  // integers convert
  bool as_bool(std::string_view what = "value") const;
  const std::string& as_string(std::string_view what = "value") const;
  const std::vector<MetaValue>& as_array(std::string_view what = "value") const;

  // Raw storage, exact for round trips.
  uint64_t raw_bits() const { return bits_; }

  // A short human form: `42`, `"gpt2"`, `[string x 50257]`.
  std::string to_string(size_t max_items = 8) const;

 private:
  Type type_ = Type::u8;
  Type elem_ = Type::u8;
  uint64_t bits_ = 0;  // integers (two's complement), bool, or the bit pattern of f32/f64
  std::string str_;
  std::vector<MetaValue> items_;
};

std::string_view meta_type_name(MetaValue::Type t);

// Ordered key -> value list (file order is kept so a GGUF round-trips byte for byte).
class Metadata {
 public:
  void set(std::string key, MetaValue value);  // replaces an existing key
  const MetaValue* find(std::string_view key) const;
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  // Throws qkv::Error naming the key when absent.
  const MetaValue& at(std::string_view key) const;
  const std::vector<std::pair<std::string, MetaValue>>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

 private:
  std::vector<std::pair<std::string, MetaValue>> entries_;
};

// One tensor, validated. `data` points into a memory-mapped file owned by the ModelFile.
struct TensorInfo {
  std::string name;
  TensorType type = TensorType::f32;
  std::vector<int64_t> shape;  // row-major, outermost first (GGUF's ne[] reversed)
  uint64_t offset = 0;         // absolute byte offset in its file
  uint64_t n_bytes = 0;
  const std::byte* data = nullptr;
  int file_index = 0;  // which of ModelFile::files (shards)

  int64_t n_elements() const;
  std::span<const std::byte> bytes() const { return {data, static_cast<size_t>(n_bytes)}; }
};

enum class FileFormat : uint8_t { gguf, safetensors, llama2c, hf_folder };
std::string_view file_format_name(FileFormat f);

// Architecture hyper-parameters, from GGUF `{arch}.*` keys, HF config.json or the llama2.c header.
// 0 (or an empty string) means "not given by the file".
struct ModelConfig {
  std::string architecture;  // "llama", "gpt2", "bert", ...
  int64_t n_vocab = 0;
  int64_t n_ctx = 0;  // trained context length
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  int64_t n_ff = 0;
  double norm_eps = 0;
  double rope_theta = 0;
  std::string rope_type;
  std::string activation;
  int64_t sliding_window = 0;   // keys a sliding-window layer sees, itself included; 0: none
  double attn_softcap = 0;      // attention scores s -> c tanh(s / c) (Gemma 2); 0: off
  double final_softcap = 0;     // logits likewise; 0: off
  double attn_scale = 0;        // query scale; 0: 1 / sqrt(head_dim)
  int64_t swa_pattern = 0;      // layer l slides when l % swa_pattern < swa_pattern - 1; 0: default
  double rope_theta_swa = 0;    // RoPE base of the sliding layers; 0: the family's default
  double rope_scale = 0;        // linear RoPE scaling: positions divided by it; 0: none
  double rope_attn_factor = 0;  // q and k scaled by it after RoPE (LongRoPE); 0: 1
  int64_t n_ctx_orig = 0;       // context of the short RoPE factors (Phi-3 LongRoPE); 0: n_ctx
  // RoPE frequency divisors that a config states as parameters rather than as tensors (HF
  // config.json), one per frequency (head_dim / 2): Llama 3's scaling turned into what GGUF
  // files carry as rope_freqs (llama3_rope_freqs), and Phi-3's LongRoPE factor lists (long past
  // n_ctx_orig, short within it). Empty: none, or the file holds them as tensors.
  std::vector<float> rope_freqs, rope_factors_long, rope_factors_short;
  bool tied_embeddings = false;
  bool causal = true;
};

// Llama 3.x's RoPE scaling as a config states it (rope_type "llama3"; the defaults are
// llama.cpp's converter's when a key is absent).
struct Llama3RopeScaling {
  double factor = 8;
  double low_freq_factor = 1;
  double high_freq_factor = 4;
  int64_t original_context = 8192;
};
// The divisor of each of the head_dim / 2 RoPE frequencies theta^(-2i / head_dim) under that
// scaling, as llama.cpp's converter writes them into the rope_freqs tensor: 1 where the
// wavelength is shorter than original_context / high_freq_factor, `factor` where it is longer
// than original_context / low_freq_factor, a smooth blend between. Throws InvalidArgument naming
// a parameter that is not finite and positive, or high_freq_factor <= low_freq_factor.
std::vector<float> llama3_rope_freqs(const Llama3RopeScaling& scaling, double theta,
                                     int64_t head_dim);

// The uniform result of opening any model file.
struct ModelFile {
  std::string path;  // as given (file or folder)
  FileFormat format = FileFormat::gguf;
  uint32_t version = 0;  // GGUF 2/3, llama2.c 0/1, 0 otherwise
  Metadata metadata;
  ModelConfig config;
  std::vector<TensorInfo> tensors;
  std::vector<std::string> files;  // the data files (several for a sharded checkpoint)
  uint64_t alignment = 0;          // GGUF
  // Keeps alive the memory the tensors' data point into (file mappings or copied bytes).
  std::vector<std::shared_ptr<const void>> storage;

  const TensorInfo* find_tensor(std::string_view name) const;
  const TensorInfo& tensor(std::string_view name) const;  // throws naming the tensor
};

// Opens a GGUF, a .safetensors, a model.safetensors.index.json, a llama2.c .bin, or an HF folder
// (config.json + weights). The format is found from the magic bytes, not the file name.
ModelFile open_model(const std::string& path);

ModelFile read_gguf(const std::string& path);
ModelFile read_safetensors(const std::string& path);  // a file or an index.json
ModelFile read_llama2c(const std::string& path);
ModelFile read_hf_folder(const std::string& dir);
// HF config.json -> hyper-parameters (gpt2, llama, bert and close relatives).
ModelConfig read_hf_config(const std::string& path);

// The same readers over bytes in memory (copied); `name` stands for the file in errors.
ModelFile read_gguf_bytes(std::span<const std::byte> bytes, const std::string& name);
ModelFile read_safetensors_bytes(std::span<const std::byte> bytes, const std::string& name);
ModelFile read_llama2c_bytes(std::span<const std::byte> bytes, const std::string& name);

// Decodes a tensor to fp32 (f32 copy, f16/bf16 widening, dequantisation of the block formats
// bit-identical to ggml's, i32 conversion).
std::vector<float> tensor_to_f32(const TensorInfo& t);
// Q8_0: blocks of {f16 scale d, int8 q[32]}; x = d * q. `n` must be a multiple of 32.
void dequantize_q8_0(const std::byte* blocks, int64_t n, float* out);
void quantize_q8_0(const float* x, int64_t n, std::byte* blocks);

// GGUF writer (v3). Keys and tensors are written in the order added; tensor data is padded to
// `alignment` (general.alignment is written when it differs from the default 32).
class GgufWriter {
 public:
  explicit GgufWriter(uint32_t version = 3, uint64_t alignment = 32);
  void set(std::string key, MetaValue value);
  // `shape` row-major; `data` must hold exactly the tensor's bytes.
  void add_tensor(std::string name, TensorType type, std::vector<int64_t> shape,
                  std::span<const std::byte> data);
  std::vector<std::byte> to_bytes() const;
  void write(const std::string& path) const;

 private:
  struct Pending {
    std::string name;
    TensorType type;
    std::vector<int64_t> shape;
    std::vector<std::byte> data;
  };
  uint32_t version_;
  uint64_t alignment_;
  Metadata meta_;
  std::vector<Pending> tensors_;
};

// Streaming GGUF writer (v3), for files too large to hold twice in memory: the header comes from
// `metadata` and the declared tensors, then `fill(i, out)` is called once per tensor, in order, to
// produce tensor i's bytes into `out` (exactly its size). One buffer, the size of the largest
// tensor, is reused, so memory stays at one tensor. The alignment is general.alignment when
// `metadata` sets it (a u32 power of two), else 32. The file is written as `path` + ".part" and
// renamed when complete, so a failure never leaves a truncated file under `path`. The bytes are
// the same as GgufWriter::write with the same keys and tensors.
struct GgufTensorDecl {
  std::string name;
  TensorType type = TensorType::f32;
  std::vector<int64_t> shape;  // row-major
};
using GgufTensorFill = std::function<void(size_t index, std::span<std::byte> out)>;
void write_gguf_streaming(const std::string& path, const Metadata& metadata,
                          const std::vector<GgufTensorDecl>& tensors, const GgufTensorFill& fill);

// Writes a ModelFile's metadata and tensors back as GGUF (a GGUF read and written again is
// byte-identical).
GgufWriter gguf_writer_from(const ModelFile& m);

// safetensors writer: F32/F16/BF16/I32 tensors plus string __metadata__, header padded to 8 bytes.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, std::string>>& metadata,
                       const std::vector<TensorInfo>& tensors);

// Tokenizer data from model files (build a qkv::Tokenizer from it, qkv/tokenizer.h).
// From GGUF tokenizer.ggml.* keys (model "gpt2", "llama" or "bert").
TokenizerSpec tokenizer_spec_from_gguf(const ModelFile& m);
// The inverse: writes a spec as tokenizer.ggml.* keys (llama.cpp's conventions, so that
// tokenizer_spec_from_gguf gives back a tokenizer that encodes the same).
void tokenizer_spec_to_gguf(const TokenizerSpec& spec, Metadata& metadata);
// HF tokenizer.json (BPE with ByteLevel, BPE with byte_fallback, or WordPiece).
TokenizerSpec read_tokenizer_json(const std::string& path);
TokenizerSpec parse_tokenizer_json(std::string_view text, const std::string& name);
// llama2.c tokenizer.bin: i32 max_token_length, then per token {f32 score, i32 len, bytes}.
// `n_vocab` > 0 reads exactly that many tokens (the model's vocab_size), else up to the end.
TokenizerSpec read_llama2c_tokenizer(const std::string& path, int64_t n_vocab = 0);
TokenizerSpec parse_llama2c_tokenizer(std::span<const std::byte> bytes, const std::string& name,
                                      int64_t n_vocab = 0);
// BERT vocab.txt (one token a line) and GPT-2 vocab.json + merges.txt.
TokenizerSpec read_wordpiece_vocab(const std::string& path);
TokenizerSpec read_gpt2_vocab(const std::string& vocab_json, const std::string& merges_txt);
// A file that is only a tokenizer, by its extension: .gguf (vocabulary-only or a whole model),
// .json (HF tokenizer.json), .txt (BERT vocab.txt), anything else a llama2.c tokenizer.bin (of
// `n_vocab` tokens when > 0).
TokenizerSpec read_tokenizer_file(const std::string& path, int64_t n_vocab = 0);
// The tokenizer of a model: `tokenizer_path` when given (read_tokenizer_file), else the one
// inside or beside the model (GGUF metadata; the HF folder's tokenizer.json, vocab.json +
// merges.txt or vocab.txt; the single tok*.bin beside a llama2.c checkpoint). Throws qkv::Error
// saying what to pass when there is none.
TokenizerSpec tokenizer_spec_for(const ModelFile& m, const std::string& tokenizer_path = "");

}  // namespace qkv
