// Internals of attention_cuda shared with tests and benchmarks.
#pragma once

#include <span>

#include "cuda/flash_params.h"
#include "qkv/attention_cuda.h"

namespace qkv::cuda {

// All argument checks of attention_cuda (no CUDA call): throws InvalidArgument naming the option,
// size or stride that is refused. The returned parameters still lack seq_info and the split.
FlashParams make_flash_params(const View4& q, const View4& k, const View4& v, const OutView4& out,
                              std::span<float> lse, const AttentionOptions& options);

// True when the current device is a Hopper (compute capability 9.0): the sm90 kernel can run.
bool sm90_device();

// Plans and launches on `stream`; force_splits > 0 fixes the number of KV splits, and `kernel`
// forces one kernel (tests and benchmarks compare them).
void run_flash(FlashParams f, const AttentionOptions& options, void* stream, int force_splits,
               FlashKernel kernel = FlashKernel::automatic);

}  // namespace qkv::cuda
