// Threads: a thin layer over OpenMP so kernels state what they need, not how it is scheduled.
#pragma once

#include <cstdint>
#include <functional>

namespace qkv::core {

// The thread count a call with `requested` threads gets (0: all hardware threads).
int resolve_threads(int requested);

// Runs fn(item, thread) for item in [0, n) on `n_threads` threads; items are handed out one at a
// time in increasing order, so callers that put the heaviest items first get greedy balancing.
// Exceptions thrown by fn are re-thrown in the caller.
void parallel_for_dynamic(int64_t n, int n_threads, const std::function<void(int64_t, int)>& fn);

}  // namespace qkv::core
