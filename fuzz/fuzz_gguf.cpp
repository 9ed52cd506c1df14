// libFuzzer target: GGUF reader, its tokenizer metadata and the tokenizer built from it.
#include <cstddef>
#include <cstdint>

#include "qkv/model_file.h"
#include "qkv/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const qkv::ModelFile m =
        qkv::read_gguf_bytes({reinterpret_cast<const std::byte*>(data), size}, "fuzz.gguf");
    for (const qkv::TensorInfo& t : m.tensors) {
      if (t.n_elements() <= (1 << 16)) qkv::tensor_to_f32(t);
    }
    (void)qkv::gguf_writer_from(m).to_bytes();
    const qkv::Tokenizer tok(qkv::tokenizer_spec_from_gguf(m));
    const auto ids = tok.encode("Hello world, \xc3\xbc \xe4\xbd\xa0\xe5\xa5\xbd 123");
    (void)tok.decode(ids);
  } catch (const qkv::Error&) {
  }
  return 0;
}
