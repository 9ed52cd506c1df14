// The built-in model: a small GPT-2 trained by `qkv train` on the built-in story corpus
// (models/qkv-stories.gguf, compiled into the binary; docs/TRAINING.md has the command that
// reproduces it). `qkv generate` and `qkv explain` use it when no -m is given.
#pragma once

#include <span>
#include <string>

#include "qkv/model.h"

namespace qkv::app {

// The embedded GGUF bytes; empty when the build had no models/qkv-stories.gguf.
std::span<const std::byte> default_model_bytes();

// `path` when given, else the built-in model (a note on stderr says so). Throws qkv::Error when
// there is neither.
Model load_model_or_default(const std::string& path, const LoadOptions& options);

}  // namespace qkv::app
