#include "distributed/fingerprint.h"

#include <cstring>

#include "core/error.h"

namespace qkv::distributed {
namespace {

uint64_t fnv1a(const void* data, int64_t bytes, uint64_t h = 14695981039346656037ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (int64_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

int64_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

}  // namespace

void Fingerprint::add_hash(const char* name, const void* data, int64_t bytes) {
  add(name, static_cast<int64_t>(fnv1a(data, bytes)));
}

void Fingerprint::add_view(const char* name, const View4& v) {
  add(name, static_cast<int64_t>(v.dtype));
  for (int d = 0; d < 4; ++d) add(name, v.shape[d]);
}

void Fingerprint::add_options(const AttentionOptions& o, int64_t n_q, int64_t n_kv) {
  add("scale", bits(o.scale));
  add("causal", o.causal);
  add("window_left", o.window_left);
  add("window_right", o.window_right);
  add("softcap", bits(o.softcap));
  add("precision", static_cast<int64_t>(o.precision));
  add("kv_lengths count", static_cast<int64_t>(o.kv_lengths.size()));
  add_hash("kv_lengths", o.kv_lengths.data(), static_cast<int64_t>(o.kv_lengths.size_bytes()));
  add("q_offsets count", static_cast<int64_t>(o.q_offsets.size()));
  add_hash("q_offsets", o.q_offsets.data(), static_cast<int64_t>(o.q_offsets.size_bytes()));
  add("alibi_slopes count", static_cast<int64_t>(o.alibi_slopes.size()));
  add_hash("alibi_slopes", o.alibi_slopes.data(),
           static_cast<int64_t>(o.alibi_slopes.size_bytes()));
  add("mask kind", static_cast<int64_t>(o.mask.kind));
  uint64_t h = 0;
  if (o.mask.kind != MaskKind::none && o.mask.data) {
    add("mask rows", o.mask.n_q);
    add("mask columns", o.mask.n_kv);
    // Every row of a mask up to 4M entries; beyond, every k-th row (the hash is a guard against
    // ranks started differently, not a proof; hashing a 16k x 16k mask would cost a second).
    const int64_t es = o.mask.kind == MaskKind::boolean ? 1 : 4;
    const int64_t step = std::max<int64_t>(1, o.mask.n_q * o.mask.n_kv / (int64_t{1} << 22));
    h = 14695981039346656037ull;
    for (int64_t i = 0; i < o.mask.n_q && i < n_q; i += step) {
      for (int64_t j = 0; j < o.mask.n_kv && j < n_kv; ++j) {
        const char* e = static_cast<const char*>(o.mask.data) +
                        (i * o.mask.stride_q + j * o.mask.stride_kv) * es;
        h = fnv1a(e, es, h);
      }
    }
  } else {
    add("mask rows", 0);
    add("mask columns", 0);
  }
  add("mask contents", static_cast<int64_t>(h));
}

void Fingerprint::check(Communicator& comm, const char* what) const {
  if (comm.size() == 1) return;
  const int64_t n = static_cast<int64_t>(fields_.size());
  // The field count first: a rank that built another fingerprint disagrees there.
  std::vector<int64_t> mine(static_cast<size_t>(n) + 1);
  mine[0] = n;
  for (int64_t i = 0; i < n; ++i) mine[i + 1] = fields_[i].value;
  std::vector<int64_t> counts(static_cast<size_t>(comm.size()));
  comm.allgather(&n, counts.data(), sizeof(int64_t));
  for (int r = 1; r < comm.size(); ++r) {
    if (counts[r] != counts[0]) {
      core::throw_invalid(what, ": rank ", r, " describes its problem with ", counts[r],
                          " fields but rank 0 with ", counts[0],
                          ": the ranks run different builds of qkv");
    }
  }
  std::vector<int64_t> all(static_cast<size_t>(comm.size()) * mine.size());
  comm.allgather(mine.data(), all.data(), static_cast<int64_t>(mine.size() * sizeof(int64_t)));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v0 = all[static_cast<size_t>(i) + 1];
    for (int r = 1; r < comm.size(); ++r) {
      const int64_t vr = all[static_cast<size_t>(r) * mine.size() + static_cast<size_t>(i) + 1];
      if (vr != v0) {
        core::throw_invalid(what, ": rank ", r, " passed ", fields_[i].name, " = ", vr,
                            " but rank 0 passed ", v0,
                            ": every rank must pass the same problem (docs/DISTRIBUTED.md)");
      }
    }
  }
}

}  // namespace qkv::distributed
