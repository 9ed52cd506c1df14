// libFuzzer target: safetensors reader.
#include <cstddef>
#include <cstdint>

#include "qkv/model_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const qkv::ModelFile m = qkv::read_safetensors_bytes(
        {reinterpret_cast<const std::byte*>(data), size}, "fuzz.safetensors");
    for (const qkv::TensorInfo& t : m.tensors) {
      if (t.n_elements() <= (1 << 16)) qkv::tensor_to_f32(t);
    }
  } catch (const qkv::Error&) {
  }
  return 0;
}
