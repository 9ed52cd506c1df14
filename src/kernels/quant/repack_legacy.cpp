// Interleaved layouts of the 32-value formats (repack.h) and their reference twin.
//
// A group holds rows [16 g, 16 g + 16) of n_in values, nb = n_in / 32 blocks, in units of 2
// blocks (1 with a min), each unit 64 bytes of scales followed by its blocks' codes, so that a
// group is one sequential stream of 64-byte lines (decode reads it once from memory):
//
//   scales  per block 32 bytes: the 16 rows' d (f16); Q4_1 / Q5_1 64 bytes: d, then the 16 m;
//   codes   C bytes per block, made of 64-byte vectors in which byte 4 r + t belongs to row r (one
//           int32 lane per row, 4 consecutive values per lane, vpdpbusd's shape):
//     Q8_0   C = 512: vector q (< 8) holds values 4 q + t, as stored (int8);
//     Q4_0, Q4_1, IQ4_NL   C = 256: vector j (< 4) holds nibbles: low = value 4 j + t, high =
//            value 16 + 4 j + t (the block's own pairing of j and j + 16), as stored (4-bit code);
//     Q5_0, Q5_1   C = 320: those 4 nibble vectors, then one vector of the fifth bits, row r's
//            32-bit word at bytes 4 r (little-endian) with the bit of value 4 q + t at bit
//            8 t + q, so that quad q's bits come out of every lane with one shift and one mask.
//   An odd nb leaves the last unit's second scale slot zero (and no codes for it).
//   Rows at or past n_out are zero: d = 0 makes their (unused) results 0.
//
// The integer code a value multiplies is c = Q8_0: the byte; Q4_0: q - 8; Q5_0: q - 16; IQ4_NL:
// kIq4nlValues[q]; Q4_1, Q5_1: q (unsigned). The per-block terms: acc = fmaf(d_w * d_a, I_b, acc)
// with I_b = sum_k c_k x_k; Q4_1 / Q5_1 also keep mins = fmaf(m_w, ds_a, mins) (ds_a = the
// activation block's d * sum(q), ActBlock32::ds), and y = acc + mins (+ bias). Sizes per row and
// block are those of the formats themselves (Q8_0 34, Q4_0 18, Q5_0 22, ... bytes).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/quant/dot_int8.h"
#include "kernels/quant/repack.h"
#include "kernels/quant/repack_family.h"

namespace qkv::kernels::quant {
namespace {

constexpr int64_t kRows = kRepackRows;

bool has_min(QuantType t) {
  return t == QuantType::q4_1 || t == QuantType::q5_1;
}

// Bytes of a block's codes for 16 rows (0: no layout for t).
int64_t code_bytes(QuantType t) {
  switch (t) {
    case QuantType::q8_0:
      return 512;
    case QuantType::q4_0:
    case QuantType::q4_1:
    case QuantType::iq4_nl:
      return 256;
    case QuantType::q5_0:
    case QuantType::q5_1:
      return 320;
    default:
      return 0;
  }
}

int64_t scale_bytes(QuantType t) {
  return has_min(t) ? 64 : 32;
}
// Offsets of block b's scales and codes in a group (repack_family.h's LegacyLayout, at run time).
int64_t scales_at(QuantType t, int64_t b) {
  const int64_t per = 64 / scale_bytes(t);
  return b / per * (64 + per * code_bytes(t)) + b % per * scale_bytes(t);
}
int64_t codes_at(QuantType t, int64_t b) {
  const int64_t per = 64 / scale_bytes(t);
  return b / per * (64 + per * code_bytes(t)) + 64 + b % per * code_bytes(t);
}

// The integer value that code q stands for.
int code_value(QuantType t, uint8_t q) {
  switch (t) {
    case QuantType::q8_0:
      return static_cast<int8_t>(q);
    case QuantType::q4_0:
      return q - 8;
    case QuantType::q5_0:
      return q - 16;
    case QuantType::iq4_nl:
      return kIq4nlValues[q];
    default:  // Q4_1, Q5_1
      return q;
  }
}

// Value k of row r in block b's codes (the layout in the comment at the top).
uint8_t packed_code(QuantType t, const uint8_t* codes, int r, int k) {
  if (t == QuantType::q8_0) return codes[64 * (k / 4) + 4 * r + k % 4];
  const int j = (k % 16) / 4, s = k < 16 ? 0 : 4;
  int q = (codes[64 * j + 4 * r + k % 4] >> s) & 0xF;
  if (t == QuantType::q5_0 || t == QuantType::q5_1) {
    uint32_t word;
    std::memcpy(&word, codes + 256 + 4 * r, 4);
    q |= static_cast<int>((word >> (8 * (k % 4) + k / 4)) & 1) << 4;
  }
  return static_cast<uint8_t>(q);
}

}  // namespace

int64_t legacy_group_bytes(QuantType t, int64_t n_in) {
  if (!code_bytes(t) || n_in % kQK != 0) return 0;
  const int64_t nb = n_in / kQK;
  const int64_t per = 64 / scale_bytes(t);
  return (nb + per - 1) / per * 64 + nb * code_bytes(t);
}

void legacy_pack_group(QuantType t, const uint8_t* w, int64_t w_stride, int64_t n_out, int64_t n_in,
                       int64_t g, uint8_t* out) {
  const int64_t nb = n_in / kQK, bb = quant_block_bytes(t);
  const int64_t rows = std::min<int64_t>(kRows, n_out - kRows * g);
  const bool q5 = t == QuantType::q5_0 || t == QuantType::q5_1;
  // Field offsets in the stored block: d, m, qh, qs (the 32 bytes of Q8_0 or 16 of nibbles).
  const int off_m = 2, off_qh = has_min(t) ? 4 : 2;
  const int off_qs = t == QuantType::q8_0 ? 2 : (has_min(t) ? 4 : 2) + (q5 ? 4 : 0);
  if (rows < kRows || nb % (64 / scale_bytes(t)) != 0) {
    std::memset(out, 0, static_cast<size_t>(legacy_group_bytes(t, n_in)));
  }
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = w + (kRows * g + r) * w_stride;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * bb;
      uint8_t* sc = out + scales_at(t, b);
      std::memcpy(sc + 2 * r, blk, 2);
      if (has_min(t)) std::memcpy(sc + 32 + 2 * r, blk + off_m, 2);
      uint8_t* c = out + codes_at(t, b);
      // Q8_0: vector q takes bytes 4 q .. 4 q + 3; the nibble formats: vector j takes stored bytes
      // 4 j .. 4 j + 3, whose low nibbles are values 4 j + t and high nibbles 16 + 4 j + t.
      for (int64_t v = 0; v < (t == QuantType::q8_0 ? 8 : 4); ++v) {
        std::memcpy(c + 64 * v + 4 * r, blk + off_qs + 4 * v, 4);
      }
      if (q5) {
        uint32_t qh, word = 0;
        std::memcpy(&qh, blk + off_qh, 4);
        for (int k = 0; k < kQK; ++k) word |= ((qh >> k) & 1u) << (8 * (k % 4) + k / 4);
        std::memcpy(c + 256 + 4 * r, &word, 4);
      }
    }
  }
}

void legacy_reference_group(QuantType t, const uint8_t* group, int64_t n_out, int64_t n_in,
                            const uint8_t* xq, int64_t ldxq, int64_t m, int64_t g, float* y,
                            int64_t ldy, const float* bias) {
  const int64_t nb = n_in / kQK;
  for (int r = 0; r < kRows && kRows * g + r < n_out; ++r) {
    const int64_t o = kRows * g + r;
    for (int64_t i = 0; i < m; ++i) {
      const auto* x = reinterpret_cast<const ActBlock32*>(xq + i * ldxq);
      float acc = 0.0f, mins = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* sc = group + scales_at(t, b);
        uint16_t d, mw = 0;
        std::memcpy(&d, sc + 2 * r, 2);
        if (has_min(t)) std::memcpy(&mw, sc + 32 + 2 * r, 2);
        int32_t isum = 0;
        for (int k = 0; k < kQK; ++k) {
          isum += code_value(t, packed_code(t, group + codes_at(t, b), r, k)) * x[b].q[k];
        }
        const float s = core::f16_to_f32(d) * x[b].d;
        acc = std::fma(s, static_cast<float>(isum), acc);
        if (has_min(t)) mins = std::fma(core::f16_to_f32(mw), x[b].ds, mins);
      }
      float v = has_min(t) ? acc + mins : acc;
      if (bias) v += bias[o];
      y[i * ldy + o] = v;
    }
  }
}

}  // namespace qkv::kernels::quant
