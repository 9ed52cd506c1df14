// Checkpoints of a training run: the model as a GPT-2 GGUF (what generate/explain load) and the
// resumable state (parameters, AdamW moments, step, loss history) as a second GGUF.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qkv/tokenizer_spec.h"
#include "qkv/trainer.h"
#include "train/gpt.h"
#include "train/optimizer.h"

namespace qkv::learn {

// Writes `path` atomically (a temporary file beside it, then rename): llama.cpp's GPT-2 keys and
// tensor names, f32 tensors, the tokenizer, and qkv.train.* provenance keys.
void write_model_gguf(const std::string& path, const Gpt& model, const TokenizerSpec& tokenizer,
                      int64_t step, double val_loss);

// What state.gguf holds besides the tensors.
struct RunState {
  GptConfig config;
  uint64_t seed = 0;
  uint64_t data_hash = 0;       // FNV-1a of the training text and tokenizer choice
  uint64_t tokenizer_hash = 0;  // tokenizer_hash() of the run's tokenizer; 0: not recorded
  int64_t step = 0;             // steps done
  std::vector<LossPoint> history;
};

void write_state_gguf(const std::string& path, const RunState& state, const Gpt& model,
                      AdamW& optimizer);
// Reads state.gguf into `state`; when `model` / `optimizer` are given (already constructed with
// state.config), also their tensors. Throws qkv::Error naming the file and what is wrong.
RunState read_state_header(const std::string& path);
// FNV-1a of the tokenizer as tokenizer.gguf stores it (never 0), recorded in state.gguf so that
// --resume can tell when tokenizer.gguf was replaced.
uint64_t tokenizer_hash(const TokenizerSpec& spec);
void read_state_tensors(const std::string& path, Gpt& model, AdamW& optimizer);

}  // namespace qkv::learn
