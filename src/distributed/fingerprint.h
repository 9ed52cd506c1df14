// A fingerprint of a distributed call's problem, gathered from every rank before any work, so
// that ranks started with different arguments stop with an error naming the field and the rank
// instead of exchanging blocks of the wrong sizes (or waiting forever for one).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qkv/attention.h"
#include "qkv/distributed.h"

namespace qkv::distributed {

class Fingerprint {
 public:
  void add(const char* name, int64_t value) { fields_.push_back({name, value}); }
  void add_hash(const char* name, const void* data, int64_t bytes);
  // The options of attention() (every field, the arrays and the mask's contents by hash; the
  // mask is [n_q, n_kv]).
  void add_options(const AttentionOptions& o, int64_t n_q, int64_t n_kv);
  void add_view(const char* name, const View4& v);
  // Gathers every rank's fingerprint and throws InvalidArgument on the first field where a rank
  // differs from rank 0 ("what" names the call).
  void check(Communicator& comm, const char* what) const;

 private:
  struct Field {
    const char* name;
    int64_t value;
  };
  std::vector<Field> fields_;
};

}  // namespace qkv::distributed
