// check_same_arguments (include/qkv/distributed.h): every rank's arguments compared with rank 0's
// before a job does any work. Hashes first (one small message per rank), then, where one differs,
// the text of that argument from every rank, so that the error shows both values.
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "qkv/distributed.h"

namespace qkv {
namespace {

uint64_t fnv1a(std::string_view s, uint64_t h = 14695981039346656037ull) {
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  return h;
}

// A value as the error shows it: quoted, at most 120 bytes.
std::string shown(std::string v) {
  constexpr size_t kMax = 120;
  const bool cut = v.size() > kMax;
  if (cut) v.resize(kMax);
  return "\"" + v + (cut ? "...\"" : "\"");
}

}  // namespace

void check_same_arguments(Communicator& comm, std::string_view what,
                          std::span<const JobArgument> arguments) {
  if (comm.size() == 1) return;
  // [count, hash of each (name, value)]; the count first, so that lists of different lengths
  // are named as such.
  const int64_t n = static_cast<int64_t>(arguments.size());
  std::vector<int64_t> counts(static_cast<size_t>(comm.size()));
  comm.allgather(&n, counts.data(), sizeof(int64_t));
  for (int r = 1; r < comm.size(); ++r) {
    if (counts[r] != counts[0]) {
      core::throw_invalid(what, ": rank ", r, " checks ", counts[r], " arguments but rank 0 ",
                          counts[0], ": the ranks run different builds of qkv");
    }
  }
  std::vector<uint64_t> mine(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    mine[i] = fnv1a(arguments[i].value, fnv1a(arguments[i].name) ^ 0x9e3779b97f4a7c15ull);
  }
  std::vector<uint64_t> all(static_cast<size_t>(comm.size() * n));
  comm.allgather(mine.data(), all.data(), static_cast<int64_t>(n * sizeof(uint64_t)));
  for (int64_t i = 0; i < n; ++i) {
    for (int r = 1; r < comm.size(); ++r) {
      if (all[static_cast<size_t>(r * n + i)] == all[static_cast<size_t>(i)]) continue;
      // Every rank found the same (i, r): fetch that argument's text from every rank.
      const std::string& v = arguments[i].value;
      const int64_t len = static_cast<int64_t>(std::min<size_t>(v.size(), 4096));
      std::vector<int64_t> lens(static_cast<size_t>(comm.size()));
      comm.allgather(&len, lens.data(), sizeof(int64_t));
      const int64_t width = std::max<int64_t>(1, *std::max_element(lens.begin(), lens.end()));
      std::vector<char> buf(static_cast<size_t>(width), 0), texts(comm.size() * buf.size());
      std::memcpy(buf.data(), v.data(), static_cast<size_t>(len));
      comm.allgather(buf.data(), texts.data(), width);
      const auto text = [&](int rank) {
        return std::string(texts.data() + rank * width, static_cast<size_t>(lens[rank]));
      };
      core::throw_invalid(what, ": rank ", r, " was given ", arguments[i].name, " = ",
                          shown(text(r)), " but rank 0 ", shown(text(0)),
                          ": every rank of the job must be given the same arguments and files "
                          "(docs/DISTRIBUTED.md)");
    }
  }
}

}  // namespace qkv
