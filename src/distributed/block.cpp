#include "distributed/block.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace qkv {

ZigZagShard zigzag_shard(int64_t n_seq, int rank, int n_ranks) {
  if (n_ranks <= 0 || rank < 0 || rank >= n_ranks) {
    core::throw_invalid("zigzag_shard: rank ", rank, " is outside [0, ", n_ranks, ")");
  }
  if (n_seq < 0) core::throw_invalid("zigzag_shard: n_seq = ", n_seq, " is negative");
  const int64_t chunks = 2 * static_cast<int64_t>(n_ranks);
  auto start = [&](int64_t c) { return c * n_seq / chunks; };
  ZigZagShard s;
  const int64_t c0 = rank, c1 = chunks - 1 - rank;
  s.begin[0] = start(c0);
  s.len[0] = start(c0 + 1) - start(c0);
  s.begin[1] = start(c1);
  s.len[1] = start(c1 + 1) - start(c1);
  return s;
}

namespace distributed {

std::vector<int64_t> query_positions(const AttentionOptions& global, int64_t batch, int64_t n_q,
                                     int64_t n_kv) {
  std::vector<int64_t> pos(static_cast<size_t>(batch), n_kv - n_q);
  if (!global.q_offsets.empty()) {
    if (static_cast<int64_t>(global.q_offsets.size()) != batch) {
      core::throw_invalid("distributed attention: options.q_offsets has ", global.q_offsets.size(),
                          " values, expected batch = ", batch, " (or none)");
    }
    for (int64_t b = 0; b < batch; ++b) pos[b] = global.q_offsets[static_cast<size_t>(b)];
  }
  return pos;
}

BlockOptions::BlockOptions(const AttentionOptions& global, std::span<const int64_t> q_pos0,
                           int64_t q_begin, int64_t n_q, int64_t k_begin, int64_t n_k)
    : opt(global) {
  const int64_t batch = static_cast<int64_t>(q_pos0.size());
  q_offsets.resize(static_cast<size_t>(batch));
  if (!global.kv_lengths.empty()) kv_lengths.resize(static_cast<size_t>(batch));
  empty = true;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t off = q_pos0[b] + q_begin - k_begin;
    q_offsets[b] = static_cast<int32_t>(off);
    int64_t kv_len = n_k;
    if (!kv_lengths.empty()) {
      kv_len = std::clamp<int64_t>(global.kv_lengths[static_cast<size_t>(b)] - k_begin, 0, n_k);
      kv_lengths[b] = static_cast<int32_t>(kv_len);
    }
    // The interval rules are monotone in the position: the last query bounds the keys from
    // above, the first from below (kernels/attention_problem.h, key_range).
    const int64_t first = off, last = off + n_q - 1;
    int64_t hi = kv_len, lo = 0;
    if (global.causal) hi = std::min(hi, last + 1);
    if (global.window_right >= 0) hi = std::min(hi, last + global.window_right + 1);
    if (global.window_left >= 0) lo = std::max(lo, first - global.window_left);
    if (n_q > 0 && lo < hi) empty = false;
  }
  opt.q_offsets = q_offsets;
  opt.kv_lengths = kv_lengths;
  if (global.mask.kind != MaskKind::none) {
    const int64_t elem = global.mask.kind == MaskKind::boolean ? 1 : 4;
    const int64_t off = q_begin * global.mask.stride_q + k_begin * global.mask.stride_kv;
    opt.mask.data = static_cast<const char*>(global.mask.data) + off * elem;
    opt.mask.n_q = n_q;
    opt.mask.n_kv = n_k;
  }
}

void check_blocks(const char* what, const View4& k, const View4& v) {
  for (const View4* t : {&k, &v}) {
    const int64_t block = dtype_block_elems(t->dtype);
    if (t->shape[3] % block != 0) {
      core::throw_invalid(what, ": ", t == &k ? "k" : "v", " is ", dtype_name(t->dtype),
                          " with head_dim ", t->shape[3], ", not a multiple of its ", block,
                          "-value blocks");
    }
  }
}

View4 rows(const View4& t, int64_t t0, int64_t n) {
  View4 r = t;
  // Strides count values; a q8_0 row starts on a block (dtype.h), so this is whole blocks.
  r.data = static_cast<const char*>(t.data) + dtype_bytes(t.dtype, t0 * t.stride[1]);
  r.shape[1] = n;
  return r;
}

MutView4 rows(const MutView4& t, int64_t t0, int64_t n) {
  MutView4 r = t;
  r.data = t.data + t0 * t.stride[1];
  r.shape[1] = n;
  return r;
}

int64_t packed_bytes(const View4& t) {
  return t.shape[0] * t.shape[1] * t.shape[2] * dtype_bytes(t.dtype, t.shape[3]);
}

int64_t pack(const View4& t, void* dst) {
  // f32, f16, bf16: es bytes a value, any stride; q8_0: whole blocks, stride[3] = 1 (dtype.h).
  const int64_t es = dtype_size(t.dtype);
  const int64_t row = dtype_bytes(t.dtype, t.shape[3]);
  char* out = static_cast<char*>(dst);
  const char* src = static_cast<const char*>(t.data);
  for (int64_t b = 0; b < t.shape[0]; ++b) {
    for (int64_t s = 0; s < t.shape[1]; ++s) {
      for (int64_t h = 0; h < t.shape[2]; ++h) {
        const char* p =
            src + dtype_bytes(t.dtype, b * t.stride[0] + s * t.stride[1] + h * t.stride[2]);
        if (t.stride[3] == 1) {
          std::memcpy(out, p, static_cast<size_t>(row));
        } else {
          for (int64_t c = 0; c < t.shape[3]; ++c) {
            std::memcpy(out + c * es, p + c * t.stride[3] * es, static_cast<size_t>(es));
          }
        }
        out += row;
      }
    }
  }
  return packed_bytes(t);
}

void merge_into(float* acc_out, float* acc_lse, const float* part_out, const float* part_lse,
                int64_t batch, int64_t n_q, int64_t n_head, int64_t dv) {
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < n_head; ++h) {
      for (int64_t i = 0; i < n_q; ++i) {
        const int64_t li = (b * n_head + h) * n_q + i;
        const float lb = part_lse[li];
        if (lb == -std::numeric_limits<float>::infinity()) continue;
        float* o = acc_out + ((b * n_q + i) * n_head + h) * dv;
        const float* p = part_out + ((b * n_q + i) * n_head + h) * dv;
        const float la = acc_lse[li];
        if (la == -std::numeric_limits<float>::infinity()) {
          std::memcpy(o, p, static_cast<size_t>(dv) * sizeof(float));
          acc_lse[li] = lb;
          continue;
        }
        // Both finite: weights relative to the larger, so that neither exponent overflows.
        const double m = std::max(la, lb);
        const double wa = std::exp(static_cast<double>(la) - m);
        const double wb = std::exp(static_cast<double>(lb) - m);
        const double inv = 1.0 / (wa + wb);
        for (int64_t c = 0; c < dv; ++c) {
          o[c] = static_cast<float>((wa * o[c] + wb * p[c]) * inv);
        }
        acc_lse[li] = static_cast<float>(m + std::log(wa + wb));
      }
    }
  }
}

void store_rows(const float* src, const MutView4& dst, int64_t t0, int64_t n) {
  for (int64_t b = 0; b < dst.shape[0]; ++b) {
    for (int64_t s = 0; s < n; ++s) {
      for (int64_t h = 0; h < dst.shape[2]; ++h) {
        float* d = dst.data + b * dst.stride[0] + (t0 + s) * dst.stride[1] + h * dst.stride[2];
        const float* p = src + ((b * n + s) * dst.shape[2] + h) * dst.shape[3];
        for (int64_t c = 0; c < dst.shape[3]; ++c) d[c * dst.stride[3]] = p[c];
      }
    }
  }
}

}  // namespace distributed
}  // namespace qkv
