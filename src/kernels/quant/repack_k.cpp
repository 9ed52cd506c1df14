// The K family of the interleaved int8 layouts (repack.h, repack_family.h): Q4_K, Q5_K, Q6_K and
// IQ4_XS, 16 output rows side by side, so that one 512-bit vector holds 4 codes of each of the 16
// rows and every block's float scaling runs across the 16 rows at once. Here: packing from the
// GGUF rows and the scalar twin; the kernels are repack_k_avx2.cpp and repack_k_avx512.cpp.
//
// A group is 16 consecutive rows of W (the last one padded with all-zero rows, which give 0); it
// is n_in / 256 "group blocks", one per super-block, each a multiple of 64 bytes. Row o of the
// group is lane o below; "step" s of a block is its elements [4 s, 4 s + 4), 4 bytes per lane.
//
//   Q4_K group block, 2368 bytes:
//     [0, 32)       f16 d[16]        per lane (the rows' d, unchanged)
//     [32, 64)      f16 dmin[16]
//     [64, 192)     u8 sc[4][16][2]  sc[p][o][e]: 6-bit scale of sub-block 2p + e (32 elements)
//     [192, 320)    u8 mn[4][16][2]  the 6-bit mins, likewise
//     [320, 2368)   u8 qs[4][8][16][4]: byte (p, t, o, c) = row o's qs[32 p + 4 t + c]: low nibble
//                   the code of element 64 p + 4 t + c, high nibble that of element 64 p + 32 +
//                   4 t + c (the GGUF bytes themselves, moved 4 at a time).
//   Q5_K group block, 2880 bytes: Q4_K's [0, 320), then
//     [320, 832)    u8 qh[8][16][4]: byte (t, o, c) = row o's qh[4 t + c]: bit 2 p (2 p + 1) is
//                   the fifth bit (16) of the code of element 64 p + 4 t + c (+ 32);
//     [832, 2880)   Q4_K's qs. (The fifth bits before the codes, where the kernels first read
//                   them: after the codes, the jumps between the two broke the hardware's stream
//                   and m = 1 read 9.5 GB/s from DRAM against the row kernels' 20, Zen 4.)
//   Q6_K group block, 3392 bytes (the GGUF size: f32 d fills what the f16 saves):
//     [0, 64)       f32 d[16]
//     [64, 320)     i8 sc[8][16][2]  sc[p][o][e]: scale of sub-block 2 p + e (16 elements)
//     [320, 3392)   per sub-block j, 192 bytes: u8 lo[2][16][4], then u8 hi[16][4];
//                   lo[h][o][c]: low nibble = low 4 bits of the code of element 16 j + 8 h + c,
//                   high nibble = that of element 16 j + 8 h + 4 + c; hi[o][c]: bits 2 s, 2 s + 1
//                   = top 2 bits of the code of element 16 j + 4 s + c (s < 4). Codes are the
//                   stored unsigned 6-bit ones, u = q + 32.
//   IQ4_XS group block, 2240 bytes:
//     [0, 64)       f32 d[16]
//     [64, 192)     i8 sc[4][16][2]  sc[p][o][e]: signed scale (ls - 32) of sub-block 2 p + e
//     [192, 2240)   u8 qs[4][8][16][4]: byte (p, t, o, c): low nibble the grid index of element
//                   64 p + 4 t + c, high nibble that of element 64 p + 32 + 4 t + c.
//
// Canonical arithmetic (the bitwise contract of every implementation), for output o, activation
// row i (an ActBlock256 row) and block b in order, from acc = 0:
//   Q4_K, Q5_K
//         I = sum_j sc_j * sum_{k in j} u_k q_k             (j < 8, int32, exact)
//         M = sum_j mn_j * (bsums[2 j] + bsums[2 j + 1])
//         acc = fmaf(d_w * d_a, (float)I, acc);  acc = fmaf(-(dmin_w * d_a), (float)M, acc)
//   Q6_K  I = sum_j sc_j * sum_{k in j} u_k q_k - 32 sum_j sc_j bsums[j]   (j < 16)
//         acc = fmaf(d_w * d_a, (float)I, acc)
//   IQ4_XS I = sum_j sc_j * sum_{k in j} w_k q_k  (w the grid values);  acc as Q6_K
//   y = acc (+ bias[o]); every product d_w * d_a one fp32 multiply.
// A row's result depends on nothing but its own activations and n_in: not on m, the other rows
// or the target. Sizes: Q4_K 2.8% above the GGUF bytes (unpacked 6-bit scales), Q5_K 2.3%, Q6_K
// 0%, IQ4_XS 3.0%.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "kernels/quant/dequant.h"
#include "kernels/quant/dot_int8.h"
#include "kernels/quant/repack.h"
#include "kernels/quant/repack_family.h"

namespace qkv::kernels::quant {

namespace {

constexpr int64_t kQ4KBlock = 2368;
constexpr int64_t kQ5KBlock = 2880;  // Q4_K's, then the fifth bits
constexpr int64_t kQ6KBlock = 3392;
constexpr int64_t kIq4XsBlock = 2240;

// Q6_K's unsigned 6-bit code (q + 32) of element k of a GGUF block (blocks.h's element order).
int q6k_code(const BlockQ6K& b, int k) {
  const int half = k / 128, r = k % 128, l = r % 32, g = r / 32;
  const uint8_t ql = b.ql[64 * half + l + 32 * (g % 2)];
  const int low = g / 2 ? ql >> 4 : ql & 0xF;
  return low | (((b.qh[32 * half + l] >> (2 * g)) & 3) << 4);
}

// Q4_K, and Q5_K with its qh: the two share the fields before qh (d, dmin, scales) and qs.
template <class Block>
void repack_q45k_block(const uint8_t* const* rows, int n_rows, int64_t b, uint8_t* out) {
  constexpr bool q5 = sizeof(Block) == sizeof(BlockQ5K);
  std::memset(out, 0, q5 ? kQ5KBlock : kQ4KBlock);
  for (int o = 0; o < n_rows; ++o) {
    Block blk;
    std::memcpy(&blk, rows[o] + b * sizeof(Block), sizeof blk);
    if constexpr (q5) {
      for (int t = 0; t < 8; ++t) std::memcpy(out + 320 + 64 * t + 4 * o, blk.qh + 4 * t, 4);
    }
    std::memcpy(out + 2 * o, &blk.d, 2);
    std::memcpy(out + 32 + 2 * o, &blk.dmin, 2);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, mn;
      k_scale_min(j, blk.scales, sc, mn);
      out[64 + 32 * (j / 2) + 2 * o + j % 2] = sc;
      out[192 + 32 * (j / 2) + 2 * o + j % 2] = mn;
    }
    for (int p = 0; p < 4; ++p) {
      for (int t = 0; t < 8; ++t) {
        std::memcpy(out + (q5 ? 832 : 320) + 64 * (8 * p + t) + 4 * o, blk.qs + 32 * p + 4 * t, 4);
      }
    }
  }
}

void repack_q6k_block(const uint8_t* const* rows, int n_rows, int64_t b, uint8_t* out) {
  std::memset(out, 0, kQ6KBlock);
  for (int o = 0; o < n_rows; ++o) {
    BlockQ6K blk;
    std::memcpy(&blk, rows[o] + b * sizeof(BlockQ6K), sizeof blk);
    const float d = core::f16_to_f32(blk.d);
    std::memcpy(out + 4 * o, &d, 4);
    for (int j = 0; j < 16; ++j) {
      out[64 + 32 * (j / 2) + 2 * o + j % 2] = static_cast<uint8_t>(blk.scales[j]);
    }
    for (int j = 0; j < 16; ++j) {
      uint8_t* sub = out + 320 + 192 * j;
      for (int c = 0; c < 4; ++c) {
        for (int h = 0; h < 2; ++h) {
          const int lo = q6k_code(blk, 16 * j + 8 * h + c),
                    hi = q6k_code(blk, 16 * j + 8 * h + 4 + c);
          sub[64 * h + 4 * o + c] = static_cast<uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
        }
        int top = 0;
        for (int s = 0; s < 4; ++s) top |= (q6k_code(blk, 16 * j + 4 * s + c) >> 4) << (2 * s);
        sub[128 + 4 * o + c] = static_cast<uint8_t>(top);
      }
    }
  }
}

void repack_iq4xs_block(const uint8_t* const* rows, int n_rows, int64_t b, uint8_t* out) {
  std::memset(out, 0, kIq4XsBlock);
  for (int o = 0; o < n_rows; ++o) {
    BlockIq4Xs blk;
    std::memcpy(&blk, rows[o] + b * sizeof(BlockIq4Xs), sizeof blk);
    const float d = core::f16_to_f32(blk.d);
    std::memcpy(out + 4 * o, &d, 4);
    for (int s = 0; s < 8; ++s) {
      const int ls =
          ((blk.scales_l[s / 2] >> (4 * (s % 2))) & 0xF) | (((blk.scales_h >> (2 * s)) & 3) << 4);
      out[64 + 32 * (s / 2) + 2 * o + s % 2] = static_cast<uint8_t>(static_cast<int8_t>(ls - 32));
    }
    // The 4-bit index of element 32 s + l: nibble l / 16 of qs[16 s + l % 16].
    const auto index = [&](int s, int l) {
      const uint8_t v = blk.qs[16 * s + l % 16];
      return l < 16 ? v & 0xF : v >> 4;
    };
    for (int p = 0; p < 4; ++p) {
      for (int t = 0; t < 8; ++t) {
        for (int c = 0; c < 4; ++c) {
          out[192 + 64 * (8 * p + t) + 4 * o + c] =
              static_cast<uint8_t>(index(2 * p, 4 * t + c) | (index(2 * p + 1, 4 * t + c) << 4));
        }
      }
    }
  }
}

// The packed layouts read back: code of lane o, element k of a group block.
int q45k_packed_code(const uint8_t* blk, bool q5, int o, int k) {
  const int p = k / 64, r = k % 64, t = (r % 32) / 4, c = r % 4, e = r / 32;
  const uint8_t byte = blk[(q5 ? 832 : 320) + 64 * (8 * p + t) + 4 * o + c];
  const int low = e ? byte >> 4 : byte & 0xF;
  return q5 ? low | (((blk[320 + 64 * t + 4 * o + c] >> (2 * p + e)) & 1) << 4) : low;
}

int iq4xs_packed_value(const uint8_t* blk, int o, int k) {
  const int s = k / 32, t = (k % 32) / 4, c = k % 4;
  const uint8_t byte = blk[192 + 64 * (8 * (s / 2) + t) + 4 * o + c];
  return kIq4nlValues[s % 2 ? byte >> 4 : byte & 0xF];
}

int q6k_packed_code(const uint8_t* blk, int o, int k) {
  const int j = k / 16, s = (k % 16) / 4, c = k % 4;
  const uint8_t* sub = blk + 320 + 192 * j;
  const uint8_t lo = sub[64 * (s / 2) + 4 * o + c];
  const int low = s % 2 ? lo >> 4 : lo & 0xF;
  return low | (((sub[128 + 4 * o + c] >> (2 * s)) & 3) << 4);
}

}  // namespace

namespace {

// Bytes of one group block (16 rows x 256 values); 0 for the types without a K layout.
int64_t block_bytes(QuantType t) {
  switch (t) {
    case QuantType::q4_k:
      return kQ4KBlock;
    case QuantType::q5_k:
      return kQ5KBlock;
    case QuantType::q6_k:
      return kQ6KBlock;
    case QuantType::iq4_xs:
      return kIq4XsBlock;
    default:
      return 0;
  }
}

}  // namespace

int64_t k_group_bytes(QuantType t, int64_t n_in) {
  return n_in / kQKK * block_bytes(t);
}

void k_pack_group(QuantType t, const uint8_t* w, int64_t w_stride, int64_t n_out, int64_t n_in,
                  int64_t g, uint8_t* dst) {
  const int64_t nb = n_in / kQKK, block = block_bytes(t);
  const uint8_t* rows[kRepackRows];
  const int n_rows = static_cast<int>(std::min<int64_t>(kRepackRows, n_out - g * kRepackRows));
  for (int o = 0; o < n_rows; ++o) rows[o] = w + (g * kRepackRows + o) * w_stride;
  for (int64_t b = 0; b < nb; ++b) {
    if (t == QuantType::q4_k) {
      repack_q45k_block<BlockQ4K>(rows, n_rows, b, dst + b * block);
    } else if (t == QuantType::q5_k) {
      repack_q45k_block<BlockQ5K>(rows, n_rows, b, dst + b * block);
    } else if (t == QuantType::iq4_xs) {
      repack_iq4xs_block(rows, n_rows, b, dst + b * block);
    } else {
      repack_q6k_block(rows, n_rows, b, dst + b * block);
    }
  }
}

void k_reference_group(QuantType t, const uint8_t* grp, int64_t n_out, int64_t n_in,
                       const uint8_t* xq, int64_t ldxq, int64_t m, int64_t g, float* y, int64_t ldy,
                       const float* bias) {
  const int64_t nb = n_in / kQKK, block = block_bytes(t);
  const bool q45k = t == QuantType::q4_k || t == QuantType::q5_k, q5 = t == QuantType::q5_k;
  for (int o = 0; o < kRepackRows && g * kRepackRows + o < n_out; ++o) {
    const int64_t out = g * kRepackRows + o;
    for (int64_t i = 0; i < m; ++i) {
      const auto* x = reinterpret_cast<const ActBlock256*>(xq + i * ldxq);
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = grp + b * block;
        const ActBlock256& a = x[b];
        if (q45k) {
          int32_t isum = 0, msum = 0;
          for (int j = 0; j < 8; ++j) {
            int32_t dot = 0;
            for (int k = 32 * j; k < 32 * j + 32; ++k)
              dot += q45k_packed_code(blk, q5, o, k) * a.q[k];
            const int e = 2 * o + j % 2;
            isum += blk[64 + 32 * (j / 2) + e] * dot;
            msum += blk[192 + 32 * (j / 2) + e] * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
          }
          uint16_t d, dmin;
          std::memcpy(&d, blk + 2 * o, 2);
          std::memcpy(&dmin, blk + 32 + 2 * o, 2);
          acc = std::fma(core::f16_to_f32(d) * a.d, static_cast<float>(isum), acc);
          acc = std::fma(-(core::f16_to_f32(dmin) * a.d), static_cast<float>(msum), acc);
        } else if (t == QuantType::iq4_xs) {
          int32_t isum = 0;
          for (int j = 0; j < 8; ++j) {
            int32_t dot = 0;
            for (int k = 32 * j; k < 32 * j + 32; ++k)
              dot += iq4xs_packed_value(blk, o, k) * a.q[k];
            isum += static_cast<int8_t>(blk[64 + 32 * (j / 2) + 2 * o + j % 2]) * dot;
          }
          float d;
          std::memcpy(&d, blk + 4 * o, 4);
          acc = std::fma(d * a.d, static_cast<float>(isum), acc);
        } else {
          int32_t isum = 0, off = 0;
          for (int j = 0; j < 16; ++j) {
            int32_t dot = 0;
            for (int k = 16 * j; k < 16 * j + 16; ++k) dot += q6k_packed_code(blk, o, k) * a.q[k];
            const int sc = static_cast<int8_t>(blk[64 + 32 * (j / 2) + 2 * o + j % 2]);
            isum += sc * dot;
            off += sc * a.bsums[j];
          }
          float d;
          std::memcpy(&d, blk + 4 * o, 4);
          acc = std::fma(d * a.d, static_cast<float>(isum - 32 * off), acc);
        }
      }
      y[i * ldy + out] = bias ? acc + bias[out] : acc;
    }
  }
}

}  // namespace qkv::kernels::quant
