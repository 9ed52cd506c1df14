// libFuzzer target: HF config.json -> ModelConfig (every key the reader takes, of any JSON type).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "formats/formats_internal.h"
#include "qkv/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    (void)qkv::formats::parse_hf_config(std::string_view(reinterpret_cast<const char*>(data), size),
                                        "fuzz-config.json");
  } catch (const qkv::Error&) {
  }
  return 0;
}
