// The block formats of quantized GGUF tensors (ggml's layouts), in one place: the file reader, the
// dequantizers, the matrix-vector kernels and `qkv quantize` all use these structs and sizes.
//
// A quantized row of n values is n / block_elems consecutive blocks; every block stands alone
// (its own scales), so a row can be decoded from its bytes in the memory map without copying.
// All multi-byte fields are little-endian; `d`, `dmin`, `m` are IEEE half floats (f16 bits).
// Elements are listed in ggml's order: element i of the block is the i-th value of the row.
//
// Legacy formats, 32 values per block (q = the 4- or 5-bit code, nibble j of qs holds elements
// j (low nibble) and j + 16 (high nibble), j < 16):
//   Q4_0   18 B  {f16 d; u8 qs[16]}                   x = d * (q - 8)
//   Q4_1   20 B  {f16 d; f16 m; u8 qs[16]}            x = d * q + m
//   Q5_0   22 B  {f16 d; u8 qh[4]; u8 qs[16]}         q |= bit j (resp. j + 16) of qh (u32 LE)
//                                                     << 4;  x = d * (q - 16)
//   Q5_1   24 B  {f16 d; f16 m; u8 qh[4]; u8 qs[16]}  as Q5_0 without the offset; x = d * q + m
//   Q8_0   34 B  {f16 d; i8 qs[32]}                   x = d * qs[i]
//   IQ4_NL 18 B  {f16 d; u8 qs[16]}                   x = d * kIq4nlValues[q] (a non-uniform grid)
//
// K formats, 256 values per "super-block" split into sub-blocks with their own 4- to 8-bit
// scales (and mins), themselves scaled by the f16 d (and dmin):
//   Q2_K   84 B  {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}
//                16 sub-blocks of 16: scale = low nibble, min = high nibble of scales[s];
//                2-bit q; x = d * scale * q - dmin * min.
//                Element order: for each half h (128 values, qs[32h .. 32h + 32)), for shift
//                0, 2, 4, 6: 16 values from qs[l] >> shift, then 16 from qs[l + 16] >> shift.
//   Q3_K  110 B  {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}
//                16 sub-blocks of 16 with 6-bit signed scales (stored + 32): the low 4 bits of
//                scales 0..7 in the nibbles of bytes 0..3 / 4..7 (low nibbles first), the high
//                2 bits in bytes 8..11; 3-bit q = 2 low bits (qs, as Q2_K) + a high bit from
//                hmask[l] (bit b for the b-th group of 32), subtracting 4 when it is clear;
//                x = d * (scale - 32) * q.
//   Q4_K  144 B  {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}
//                8 sub-blocks of 32 with 6-bit scale and min packed in scales[12] (get_scale_min
//                in dequant.cpp); x = d * scale * q - dmin * min. For each 64 values, 32 low
//                nibbles of qs[32j .. 32j + 32) then their 32 high nibbles.
//   Q5_K  176 B  {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}
//                as Q4_K, plus a fifth bit (16) from qh[l], bit 2j for the low and 2j + 1 for the
//                high nibbles of the j-th 64 values.
//   Q6_K  210 B  {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}
//                16 sub-blocks of 16 with int8 scales; 6-bit q = 4 bits of ql + 2 bits of qh,
//                minus 32; x = d * scale * q. Per half: ql[0..64), qh[0..32), scales[0..8).
//   IQ4_XS 136 B {f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]}
//                8 sub-blocks of 32 with 6-bit scales (4 low bits in scales_l nibbles, 2 high
//                bits in scales_h), stored + 32; each sub-block as one IQ4_NL block:
//                x = d * (scale - 32) * kIq4nlValues[q].
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace qkv::kernels::quant {

// Values per block: legacy and IQ4_NL (ggml's QK4_0 ... QK8_0) and the K super-block (QK_K).
constexpr int kQK = 32;
constexpr int kQKK = 256;

struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
struct BlockIq4Nl {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
struct BlockQ2K {
  uint8_t scales[kQKK / 16];
  uint8_t qs[kQKK / 4];
  uint16_t d;
  uint16_t dmin;
};
struct BlockQ3K {
  uint8_t hmask[kQKK / 8];
  uint8_t qs[kQKK / 4];
  uint8_t scales[12];
  uint16_t d;
};
struct BlockQ4K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};
struct BlockQ5K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
struct BlockQ6K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};
struct BlockIq4Xs {
  uint16_t d;
  uint16_t scales_h;
  uint8_t scales_l[kQKK / 64];
  uint8_t qs[kQKK / 2];
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockIq4Nl) == 18);
static_assert(sizeof(BlockQ2K) == 84 && sizeof(BlockQ3K) == 110 && sizeof(BlockQ4K) == 144 &&
              sizeof(BlockQ5K) == 176 && sizeof(BlockQ6K) == 210 && sizeof(BlockIq4Xs) == 136);

// IQ4_NL / IQ4_XS: the 16 values a 4-bit code stands for (a grid denser near zero).
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// The block types, with their ggml type ids (the values GGUF stores).
enum class QuantType : uint8_t {
  q4_0,
  q4_1,
  q5_0,
  q5_1,
  q8_0,
  q2_k,
  q3_k,
  q4_k,
  q5_k,
  q6_k,
  iq4_nl,
  iq4_xs
};
constexpr int kQuantTypeCount = 12;

struct QuantFormat {
  QuantType type;
  std::string_view name;  // ggml's spelling: "Q4_K"
  uint32_t ggml_id;
  int block_elems;
  int block_bytes;
};

inline constexpr QuantFormat kQuantFormats[kQuantTypeCount] = {
    {QuantType::q4_0, "Q4_0", 2, kQK, sizeof(BlockQ4_0)},
    {QuantType::q4_1, "Q4_1", 3, kQK, sizeof(BlockQ4_1)},
    {QuantType::q5_0, "Q5_0", 6, kQK, sizeof(BlockQ5_0)},
    {QuantType::q5_1, "Q5_1", 7, kQK, sizeof(BlockQ5_1)},
    {QuantType::q8_0, "Q8_0", 8, kQK, sizeof(BlockQ8_0)},
    {QuantType::q2_k, "Q2_K", 10, kQKK, sizeof(BlockQ2K)},
    {QuantType::q3_k, "Q3_K", 11, kQKK, sizeof(BlockQ3K)},
    {QuantType::q4_k, "Q4_K", 12, kQKK, sizeof(BlockQ4K)},
    {QuantType::q5_k, "Q5_K", 13, kQKK, sizeof(BlockQ5K)},
    {QuantType::q6_k, "Q6_K", 14, kQKK, sizeof(BlockQ6K)},
    {QuantType::iq4_nl, "IQ4_NL", 20, kQK, sizeof(BlockIq4Nl)},
    {QuantType::iq4_xs, "IQ4_XS", 23, kQKK, sizeof(BlockIq4Xs)},
};

constexpr const QuantFormat& quant_format(QuantType t) {
  return kQuantFormats[static_cast<int>(t)];
}
constexpr int64_t quant_block_elems(QuantType t) {
  return quant_format(t).block_elems;
}
constexpr int64_t quant_block_bytes(QuantType t) {
  return quant_format(t).block_bytes;
}
// Bytes of a row of n values (n a multiple of the block size).
constexpr int64_t quant_row_bytes(QuantType t, int64_t n) {
  return n / quant_block_elems(t) * quant_block_bytes(t);
}

inline std::optional<QuantType> quant_type_from_ggml(uint32_t id) {
  for (const QuantFormat& f : kQuantFormats) {
    if (f.ggml_id == id) return f.type;
  }
  return std::nullopt;
}

}  // namespace qkv::kernels::quant
