// Hand-made malformed files: truncated at every byte, huge counts, offsets past the end, unknown
// dtypes, bad UTF-8, wrong magic. Each must raise qkv::Error naming the file, the field and what
// was expected vs found; none may crash, hang or allocate without bound.
#include <gtest/gtest.h>

#include <climits>
#include <cstring>

#include "formats/test_util.h"
#include "qkv/model_file.h"

namespace {

using qkv::MetaValue;
using qkv::test::expect_error;
using T = qkv::MetaValue::Type;

std::vector<std::byte> valid_gguf() {
  qkv::GgufWriter w;
  w.set("general.architecture", MetaValue::make_string("llama"));
  w.set("tokenizer.ggml.tokens", MetaValue::make_array(T::string, {MetaValue::make_string("a"),
                                                                   MetaValue::make_string("b")}));
  w.set("flag", MetaValue::make_bool(true));
  std::vector<float> a(8, 1.0f), b(4, 2.0f);
  w.add_tensor("tensor.a", qkv::TensorType::f32, {2, 4}, qkv::test::as_bytes(a));
  w.add_tensor("tensor.b", qkv::TensorType::f32, {4}, qkv::test::as_bytes(b));
  return w.to_bytes();
}

size_t find(const std::vector<std::byte>& bytes, const std::string& s) {
  const auto* p = reinterpret_cast<const char*>(bytes.data());
  const std::string_view all(p, bytes.size());
  const size_t at = all.find(s);
  EXPECT_NE(at, std::string_view::npos) << s;
  return at;
}

template <typename V>
void patch(std::vector<std::byte>& bytes, size_t at, V v) {
  std::memcpy(bytes.data() + at, &v, sizeof(V));
}

std::string write(const std::string& name, const std::vector<std::byte>& bytes) {
  const std::string path = qkv::test::temp_path(name);
  qkv::test::write_file(path, bytes);
  return path;
}

TEST(MalformedGguf, TruncatedAtEveryByte) {
  const auto full = valid_gguf();
  const qkv::ModelFile ok = qkv::read_gguf(write("full.gguf", full));
  const uint64_t data_end = ok.tensor("tensor.b").offset + ok.tensor("tensor.b").n_bytes;
  for (size_t n = 0; n < data_end; ++n) {
    const std::string path =
        write("trunc.gguf", std::vector<std::byte>(full.begin(), full.begin() + n));
    try {
      qkv::read_gguf(path);
      ADD_FAILURE() << "no error when truncated to " << n << " bytes";
    } catch (const qkv::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path), std::string::npos) << what;
      EXPECT_NE(what.find("expected"), std::string::npos) << what;
      EXPECT_NE(what.find("found"), std::string::npos) << what;
    }
  }
}

TEST(MalformedGguf, WrongMagicAndVersion) {
  auto bytes = valid_gguf();
  bytes[0] = std::byte{'X'};
  std::string p = write("magic.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "magic", "expected \"GGUF\"", "found \"XGUF\""});
  bytes = valid_gguf();
  patch<uint32_t>(bytes, 4, 1);
  p = write("v1.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "version", "expected 2 or 3", "found 1"});
}

TEST(MalformedGguf, HugeCounts) {
  auto bytes = valid_gguf();
  patch<uint64_t>(bytes, 16, 1ull << 60);  // n_kv
  std::string p = write("nkv.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "metadata count", "expected at most", "found"});
  bytes = valid_gguf();
  patch<uint64_t>(bytes, 8, 1ull << 62);  // n_tensors
  p = write("nt.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "tensor count", "expected at most"});
  bytes = valid_gguf();
  // The tokens array: key, u32 type 9, u32 element type 8, u64 count.
  const size_t count_at = find(bytes, "tokenizer.ggml.tokens") + 21 + 4 + 4;
  patch<uint64_t>(bytes, count_at, 1ull << 61);
  p = write("arr.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "tokenizer.ggml.tokens", "array count"});
  bytes = valid_gguf();
  patch<uint64_t>(bytes, count_at + 8, ~0ull);  // first string length
  p = write("str.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "tokenizer.ggml.tokens", "truncated"});
}

TEST(MalformedGguf, BadMetadataTypes) {
  auto bytes = valid_gguf();
  const size_t flag_type = find(bytes, "flag") + 4;
  patch<uint32_t>(bytes, flag_type, 13);
  std::string p = write("type.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "flag", "type", "expected 0..12", "found 13"});
  bytes = valid_gguf();
  patch<uint8_t>(bytes, flag_type + 4, 7);
  p = write("bool.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "flag", "expected 0 or 1", "found 7"});
  bytes = valid_gguf();
  patch<uint8_t>(bytes, find(bytes, "flag"), 0xff);  // key is not UTF-8
  p = write("utf8.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "metadata key", "expected UTF-8", "\\xff"});
}

TEST(MalformedGguf, NestedArraysTooDeep) {
  MetaValue v = MetaValue::make_array(T::i32, {});
  for (int i = 0; i < 20; ++i) v = MetaValue::make_array(T::array, {v});
  qkv::GgufWriter w;
  w.set("deep", v);
  const std::string p = write("deep.gguf", w.to_bytes());
  expect_error([&] { qkv::read_gguf(p); }, {p, "deep", "nested deeper"});
}

TEST(MalformedGguf, TensorInfoErrors) {
  const auto good = valid_gguf();
  const size_t b_info = find(good, "tensor.b") + 8;  // n_dims, ne[1], type, offset
  auto bytes = good;
  patch<uint32_t>(bytes, b_info + 4 + 8, 16);  // IQ2_XXS: a block format qkv does not read
  std::string p = write("dtype.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); },
               {p, "tensor.b", "type", "expected F32", "found IQ2_XXS"});
  bytes = good;
  patch<uint32_t>(bytes, b_info + 4 + 8, 12);  // Q4_K: read, but 4 values are not a block of 256
  p = write("dtype_rows.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "tensor.b", "Q4_K", "multiple of 256", "found 4"});
  bytes = good;
  patch<uint32_t>(bytes, b_info + 4 + 8, 999);
  p = write("dtype2.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "tensor.b", "found unknown (ggml type 999)"});
  bytes = good;
  patch<uint64_t>(bytes, b_info + 4 + 8 + 4, 1ull << 40);  // offset past the end
  p = write("offset.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "tensor.b", "F32", "offset", "expected at most"});
  bytes = good;
  patch<uint64_t>(bytes, b_info + 4 + 8 + 4, 64);  // inside the file, data runs past the end
  p = write("end.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); },
               {p, "tensor.b", "(F32)", "expected inside the data section", "truncated"});
  bytes = good;
  patch<uint64_t>(bytes, b_info + 4 + 8 + 4, 0);  // on top of tensor.a
  p = write("overlap.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "tensor.a", "tensor.b", "overlap"});
  bytes = good;
  patch<uint64_t>(bytes, b_info + 4 + 8 + 4, 36);  // not a multiple of 32
  p = write("align.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "tensor.b", "alignment 32"});
  bytes = good;
  patch<int64_t>(bytes, b_info + 4, 1ll << 62);
  const size_t a_info = find(good, "tensor.a") + 8;
  patch<int64_t>(bytes, a_info + 4, 1ll << 62);
  patch<int64_t>(bytes, a_info + 12, 1ll << 62);
  p = write("overflow.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "tensor.a", "overflows"});
  bytes = good;
  patch<int64_t>(bytes, b_info + 4, -4);
  p = write("negative.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "tensor.b", "expected >= 0, found -4"});
  bytes = good;
  patch<uint32_t>(bytes, b_info, 9);
  p = write("ndims.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "tensor.b", "n_dims", "expected at most 4"});
}

TEST(MalformedGguf, BadAlignment) {
  qkv::GgufWriter w;  // refuses a bad general.alignment itself: write another key, then patch
  w.set("general.alignmenX", MetaValue::make_uint(T::u64, 32));
  auto bytes = w.to_bytes();
  bytes[find(bytes, "general.alignmenX") + 16] = std::byte{'t'};
  std::string p = write("al.gguf", bytes);
  expect_error([&] { qkv::read_gguf(p); }, {p, "general.alignment", "u32", "found u64"});
}

std::vector<std::byte> safetensors_bytes(const std::string& header, size_t data_bytes) {
  std::vector<std::byte> out(8 + header.size() + data_bytes);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

TEST(MalformedSafetensors, HeaderErrors) {
  const std::string ok = R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}})";
  std::string p = write("ok.safetensors", safetensors_bytes(ok, 16));
  EXPECT_NO_THROW(qkv::read_safetensors(p));
  for (size_t n = 0; n < 8 + ok.size() + 16; ++n) {
    auto bytes = safetensors_bytes(ok, 16);
    bytes.resize(n);
    p = write("trunc.safetensors", bytes);
    expect_error([&] { qkv::read_safetensors(p); }, {p, "expected"});
  }
  auto bytes = safetensors_bytes(ok, 16);
  patch<uint64_t>(bytes, 0, 1ull << 50);
  p = write("len.safetensors", bytes);
  expect_error([&] { qkv::read_safetensors(p); }, {p, "header length", "expected at most"});
  // The data section must be tiled exactly: a header length one byte short (the padding's last
  // blank dropped) used to shift every tensor by one byte and go unnoticed.
  {
    const std::string padded = ok + "      ";
    auto b = safetensors_bytes(padded, 16);
    p = write("pad.safetensors", b);
    EXPECT_NO_THROW(qkv::read_safetensors(p));
    patch<uint64_t>(b, 0, padded.size() - 1);
    p = write("short.safetensors", b);
    expect_error([&] { qkv::read_safetensors(p); }, {p, "data section of 17 bytes", "expected 16"});
    patch<uint64_t>(b, 0, padded.size() + 1);
    p = write("long.safetensors", b);
    expect_error([&] { qkv::read_safetensors(p); }, {p, "expected inside the data section"});
    p = write("extra.safetensors", safetensors_bytes(ok, 20));
    expect_error([&] { qkv::read_safetensors(p); }, {p, "data section of 20 bytes", "expected 16"});
  }
  const std::pair<std::string, std::vector<std::string>> cases[] = {
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "F32", "shape": [1], "data_offsets": [12, 16]}})",
       {"tensor 'b' data_offsets begin at 12", "expected 8", "without gaps"}},
      {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
       {"tensor 'w' data_offsets begin at 8", "expected 0"}},
      {R"({"w": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}})",
       {"tensor 'w' dtype", "expected F32, F16, BF16 or I32", "found F64"}},
      {R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})",
       {"tensor 'w' data_offsets", "expected 16 bytes", "found 12"}},
      {R"({"w": {"dtype": "F32", "shape": [1, 4], "data_offsets": [8, 24]}})",
       {"tensor 'w' (F32) data", "expected inside the data section"}},
      {R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})",
       {"tensor 'w' shape", "expected a non-negative integer, found -1"}},
      {R"({"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 4]}})",
       {"tensor 'w'", "overflows"}},
      {R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
       {"'a'", "'b'", "overlap"}},
      {R"({"w": {"dtype": "F32"}})", {"tensor 'w'", "expected an object with dtype"}},
      {R"({"__metadata__": {"k": 1}})", {"__metadata__.k", "expected a string"}},
      {"[1, 2]", {"header", "expected a JSON object", "found array"}},
      {"{\"w\": \"\xff\xfe\"}", {"invalid JSON"}},
      {"{\"w\": ", {"invalid JSON"}},
  };
  for (const auto& [header, parts] : cases) {
    p = write("bad.safetensors", safetensors_bytes(header, 16));
    try {
      qkv::read_safetensors(p);
      ADD_FAILURE() << "no error for " << header;
    } catch (const qkv::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(p), std::string::npos) << what;
      for (const auto& part : parts) EXPECT_NE(what.find(part), std::string::npos) << what;
    }
  }
}

TEST(MalformedLlama2c, HeaderAndSize) {
  int32_t h[7] = {64, 172, 5, 8, 4, 512, 512};
  std::vector<std::byte> bytes(28 + 64);
  std::memcpy(bytes.data(), h, 28);
  std::string p = write("size.bin", bytes);
  expect_error([&] { qkv::read_llama2c(p); }, {p, "file size", "expected", "found 92"});
  h[3] = 0;
  std::memcpy(bytes.data(), h, 28);
  p = write("heads.bin", bytes);
  expect_error([&] { qkv::read_llama2c(p); }, {p, "n_heads", "expected 1..", "found 0"});
  h[3] = 7;
  std::memcpy(bytes.data(), h, 28);
  p = write("div.bin", bytes);
  expect_error([&] { qkv::read_llama2c(p); }, {p, "divisible"});
  // Found by fuzz_llama2c: vocab_size = INT32_MIN (negation overflows).
  h[3] = 8;
  h[5] = INT32_MIN;
  std::memcpy(bytes.data(), h, 28);
  p = write("vocab.bin", bytes);
  expect_error([&] { qkv::read_llama2c(p); },
               {p, "vocab_size", "expected 1..", "found -2147483648"});
  // Found by fuzz_llama2c: a huge layer count must fail before listing 10 tensors per layer.
  h[5] = 512;
  h[2] = 1 << 24;
  std::memcpy(bytes.data(), h, 28);
  p = write("layers.bin", bytes);
  expect_error([&] { qkv::read_llama2c(p); }, {p, "file size", "n_layers=16777216", "found 92"});
  p = write("short.bin", std::vector<std::byte>(5));
  expect_error([&] { qkv::open_model(p); }, {p, "format", "expected GGUF, safetensors"});
  std::vector<std::byte> v2(256);
  patch<uint32_t>(v2, 0, 0x616b3432);
  patch<int32_t>(v2, 4, 2);
  p = write("v2.bin", v2);
  expect_error([&] { qkv::read_llama2c(p); }, {p, "version", "expected 1", "found 2"});
}

TEST(MalformedTokenizer, Llama2cTokenizerBin) {
  std::vector<std::byte> bytes;
  auto put = [&](const void* v, size_t n) {
    bytes.insert(bytes.end(), static_cast<const std::byte*>(v),
                 static_cast<const std::byte*>(v) + n);
  };
  const int32_t max_len = 8;
  put(&max_len, 4);
  for (const char* t : {"<unk>", "<s>", "</s>", "a"}) {
    const float score = 0;
    const auto len = static_cast<int32_t>(std::strlen(t));
    put(&score, 4);
    put(&len, 4);
    put(t, len);
  }
  const auto spec = qkv::parse_llama2c_tokenizer(bytes, "tok.bin", 4);
  EXPECT_EQ(spec.tokens.size(), 4u);
  for (size_t n = 0; n < bytes.size(); ++n) {
    expect_error([&] { qkv::parse_llama2c_tokenizer(std::span(bytes.data(), n), "tok.bin", 4); },
                 {"tok.bin", "expected"});
  }
  auto bad = bytes;
  patch<int32_t>(bad, 4 + 4, 1000);
  expect_error([&] { qkv::parse_llama2c_tokenizer(bad, "tok.bin", 4); },
               {"tok.bin", "token 0 length", "expected 0..8", "found 1000"});
}

TEST(MalformedTokenizer, TokenizerJson) {
  const std::pair<std::string, std::vector<std::string>> cases[] = {
      {"{", {"invalid JSON"}},
      {R"({"model": {"type": "Unigram", "vocab": []}})", {"model.type", "found \"Unigram\""}},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 2}}})", {"id 1 missing"}},
      {R"({"model": {"type": "BPE", "vocab": {"a": -1}}})", {"model.vocab['a']", "found -1"}},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [7]}})", {"model.merges[0]"}},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["ab"]}})",
       {"merges[0]", "expected \"left right\""}},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}}})", {"id 0 is given to both"}},
      // Found by fuzz_tokenizer_json: fields of unexpected JSON types.
      {R"({"model": {"type": {"a": 0}}})", {"model.type", "expected a string"}},
      {R"({"model": {"type": "BPE", "vocab": {"a": 0}},
           "added_tokens": [{"id": 0, "content": "a", "special": "yes"}]})",
       {"unexpected JSON type", "type must be boolean"}},
  };
  for (const auto& [text, parts] : cases) {
    try {
      qkv::parse_tokenizer_json(text, "tokenizer.json");
      ADD_FAILURE() << "no error for " << text;
    } catch (const qkv::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("tokenizer.json"), std::string::npos) << what;
      for (const auto& part : parts) EXPECT_NE(what.find(part), std::string::npos) << what;
    }
  }
}

TEST(MalformedTokenizer, GgufTokenizerIds) {
  qkv::GgufWriter w;
  w.set("tokenizer.ggml.model", MetaValue::make_string("llama"));
  w.set("tokenizer.ggml.tokens", MetaValue::make_array(T::string, {MetaValue::make_string("a")}));
  w.set("tokenizer.ggml.bos_token_id", MetaValue::make_uint(T::u32, 5));
  const std::string p = write("tokids.gguf", w.to_bytes());
  const qkv::ModelFile m = qkv::read_gguf(p);
  expect_error([&] { qkv::tokenizer_spec_from_gguf(m); },
               {p, "tokenizer.ggml.bos_token_id", "expected a token id below 1", "found 5"});
  qkv::GgufWriter w2;
  w2.set("tokenizer.ggml.model", MetaValue::make_string("rwkv"));
  const std::string p2 = write("tokmodel.gguf", w2.to_bytes());
  expect_error(
      [&] { qkv::tokenizer_spec_from_gguf(qkv::read_gguf(p2)); },
      {p2, "tokenizer.ggml.model", "expected gpt2, llama, bert or gemma4", "found \"rwkv\""});
}

}  // namespace
