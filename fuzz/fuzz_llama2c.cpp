// libFuzzer target: llama2.c checkpoint and tokenizer.bin readers, and the tokenizer.
#include <cstddef>
#include <cstdint>

#include "qkv/model_file.h"
#include "qkv/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    (void)qkv::read_llama2c_bytes(bytes, "fuzz.bin");
  } catch (const qkv::Error&) {
  }
  try {
    const qkv::Tokenizer tok(qkv::parse_llama2c_tokenizer(bytes, "fuzz-tokenizer.bin"));
    const auto ids = tok.encode("Once upon a time \xf0\x9f\xa6\x99");
    qkv::StreamDecoder dec(tok);
    for (int32_t id : ids) (void)dec.push(id);
    (void)dec.flush();
  } catch (const qkv::Error&) {
  }
  return 0;
}
