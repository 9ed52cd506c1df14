// CPU time of the whole process, for cost ratios measured on a shared machine: unlike wall time it
// does not grow while other processes hold the cores (a preempted millisecond pass), though it
// still counts what the process itself spends (page faults, threads waiting in a spin).
#pragma once

#include <ctime>

namespace qkv::core {

// Seconds of CPU time used so far by every thread of the process.
inline double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

}  // namespace qkv::core
