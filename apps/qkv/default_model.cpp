#include "default_model.h"

#include <cstdio>

#include "qkv/error.h"
#include "qkv/model_file.h"

#if QKV_HAVE_DEFAULT_MODEL
// The GGUF file, placed in read-only data by the assembler (no multi-megabyte array literal for
// the compiler to parse). 64-byte aligned: the loader reads tensors in place after copying.
__asm__(
    ".section .rodata\n"
    ".balign 64\n"
    ".global qkv_default_model_begin\n"
    "qkv_default_model_begin:\n"
    ".incbin \"" QKV_DEFAULT_MODEL_PATH
    "\"\n"
    ".global qkv_default_model_end\n"
    "qkv_default_model_end:\n"
    ".previous\n");
extern "C" const unsigned char qkv_default_model_begin[];
extern "C" const unsigned char qkv_default_model_end[];
#endif

namespace qkv::app {

std::span<const std::byte> default_model_bytes() {
#if QKV_HAVE_DEFAULT_MODEL
  return {reinterpret_cast<const std::byte*>(qkv_default_model_begin),
          static_cast<size_t>(qkv_default_model_end - qkv_default_model_begin)};
#else
  return {};
#endif
}

Model load_model_or_default(const std::string& path, const LoadOptions& options) {
  if (!path.empty()) return Model::load(path, options);
  const std::span<const std::byte> bytes = default_model_bytes();
  if (bytes.empty()) {
    throw Error(
        "no model given (-m FILE) and this build has no built-in model "
        "(models/qkv-stories.gguf was missing when it was built)");
  }
  Model m =
      Model::from_file(read_gguf_bytes(bytes, "built-in model (models/qkv-stories.gguf)"), options);
  std::fprintf(stderr,
               "using the built-in model (qkv-stories, %lld parameters; -m to choose another)\n",
               static_cast<long long>(m.n_params()));
  return m;
}

}  // namespace qkv::app
