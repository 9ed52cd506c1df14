// qkv — what an n_threads option means.
#pragma once

namespace qkv {

// The threads that n_threads stands for in every qkv option: n_threads when positive, else all
// the hardware threads this process may use (what OpenMP offers it).
int resolve_threads(int n_threads);

}  // namespace qkv
