// libFuzzer target: HF tokenizer.json parser and the tokenizer built from it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "qkv/model_file.h"
#include "qkv/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const qkv::Tokenizer tok(qkv::parse_tokenizer_json(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz-tokenizer.json"));
    const auto ids = tok.encode("Hello, world! \xc3\xa9t\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd");
    (void)tok.decode(ids);
  } catch (const qkv::Error&) {
  }
  return 0;
}
