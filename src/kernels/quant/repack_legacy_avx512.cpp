// The AVX512-VNNI kernels of the interleaved 32-value formats (layout: repack_legacy.cpp): one
// ZMM lane per weight row, so a block's 16 rows take one vpdpbusd per 4 values of x, and their
// float combination one vcvtdq2ps, one vmulps and one vfmadd231ps per row of x.
//
// vpdpbusd multiplies unsigned bytes by signed ones: the weight's codes are made unsigned,
// u = c + off (Q8_0: the byte xor 0x80, off 128; Q4_0: the nibble, off 8; Q5_0: off 16; IQ4_NL:
// its grid value + 128 by a byte shuffle), and off * sum(x) of the block is subtracted in the
// int32 start value, so I_b = sum(u x) - off sum(x) is c . x exactly (|I_b| < 2^31).
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/cpu_features.h"
#include "kernels/cpu/linear_target.h"
#include "kernels/quant/dot_int8.h"
#include "kernels/quant/repack.h"
#include "kernels/quant/repack_family.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "kernels/cpu/targets.h"

#if !defined(__clang__)
// GCC 12's own AVX-512 intrinsic headers trip these (their _mm512_undefined_* idiom).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

QKV_TARGET_BEGIN("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")

namespace qkv::kernels::quant::avx512 {
namespace {

#define QKV_INLINE inline __attribute__((always_inline))

constexpr int64_t kRows = kRepackRows;
// Rows of x per pass over a group's blocks: 8 ZMM of unpacked codes + 8 fp32 accumulators (+ 8
// for the mins) of the 32 registers. Measured at m = 64 in L2 (512 x 2048, one thread of Zen 4):
// 4, 8, 12 and 16 rows per pass all within the noise (Q4_0 0.41-0.47 ms, Q8_0 0.40-0.51), since
// the work per row (a vpdpbusd per 4 values, the block's float terms) outweighs the unpacking.
constexpr int kRowsPerPass = 8;

// The 8 vectors of unsigned codes of one block (u[q]: values 4 q + t of every row) and their
// offset.
struct Q8_0 {
  static constexpr int64_t kCodeBytes = 512, kOff = 128;
  static constexpr bool kMin = false;
  static QKV_INLINE void unpack(const uint8_t* c, __m512i (&u)[8]) {
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int q = 0; q < 8; ++q) u[q] = _mm512_xor_si512(_mm512_load_si512(c + 64 * q), flip);
  }
};

// The 4-bit codes of the nibble formats: vector j's low nibbles are values 4 j + t, its high
// nibbles 16 + 4 j + t (quad j + 4).
QKV_INLINE void nibbles(const uint8_t* c, __m512i (&u)[8]) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  for (int j = 0; j < 4; ++j) {
    const __m512i v = _mm512_load_si512(c + 64 * j);
    u[j] = _mm512_and_si512(v, m4);
    u[j + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
  }
}

// Q5_0 / Q5_1: the fifth bit of value 4 q + t sits at bit 8 t + q of the row's word.
QKV_INLINE void fifth_bits(const uint8_t* c, __m512i (&u)[8]) {
  const __m512i w = _mm512_load_si512(c + 256), b4 = _mm512_set1_epi8(0x10);
  u[0] = _mm512_or_si512(u[0], _mm512_and_si512(_mm512_slli_epi32(w, 4), b4));
  u[1] = _mm512_or_si512(u[1], _mm512_and_si512(_mm512_slli_epi32(w, 3), b4));
  u[2] = _mm512_or_si512(u[2], _mm512_and_si512(_mm512_slli_epi32(w, 2), b4));
  u[3] = _mm512_or_si512(u[3], _mm512_and_si512(_mm512_slli_epi32(w, 1), b4));
  u[4] = _mm512_or_si512(u[4], _mm512_and_si512(w, b4));
  u[5] = _mm512_or_si512(u[5], _mm512_and_si512(_mm512_srli_epi32(w, 1), b4));
  u[6] = _mm512_or_si512(u[6], _mm512_and_si512(_mm512_srli_epi32(w, 2), b4));
  u[7] = _mm512_or_si512(u[7], _mm512_and_si512(_mm512_srli_epi32(w, 3), b4));
}

struct Q4_0 {
  static constexpr int64_t kCodeBytes = 256, kOff = 8;
  static constexpr bool kMin = false;
  static QKV_INLINE void unpack(const uint8_t* c, __m512i (&u)[8]) { nibbles(c, u); }
};

struct Q4_1 {
  static constexpr int64_t kCodeBytes = 256, kOff = 0;
  static constexpr bool kMin = true;
  static QKV_INLINE void unpack(const uint8_t* c, __m512i (&u)[8]) { nibbles(c, u); }
};

struct Q5_0 {
  static constexpr int64_t kCodeBytes = 320, kOff = 16;
  static constexpr bool kMin = false;
  static QKV_INLINE void unpack(const uint8_t* c, __m512i (&u)[8]) {
    nibbles(c, u);
    fifth_bits(c, u);
  }
};

struct Q5_1 {
  static constexpr int64_t kCodeBytes = 320, kOff = 0;
  static constexpr bool kMin = true;
  static QKV_INLINE void unpack(const uint8_t* c, __m512i (&u)[8]) {
    nibbles(c, u);
    fifth_bits(c, u);
  }
};

// IQ4_NL: the grid value + 128 (1..241) by a byte shuffle of the code.
struct Iq4Nl {
  static constexpr int64_t kCodeBytes = 256, kOff = 128;
  static constexpr bool kMin = false;
  static QKV_INLINE void unpack(const uint8_t* c, __m512i (&u)[8]) {
    const __m512i table = _mm512_xor_si512(
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues))),
        _mm512_set1_epi8(static_cast<char>(0x80)));
    nibbles(c, u);
    for (int q = 0; q < 8; ++q) u[q] = _mm512_shuffle_epi8(table, u[q]);
  }
};

// Rows [i0, i0 + M) of x against group g.
template <class F, int M>
QKV_INLINE void pass(const cpu::RepackedTask& t, const uint8_t* group, int64_t nb,
                     const int32_t* sums, int64_t g, int64_t i0) {
  using L = LegacyLayout<F::kMin ? 64 : 32, F::kCodeBytes>;
  const ActBlock32* x[M];
  __m512 acc[M], mins[M];
  for (int i = 0; i < M; ++i) {
    x[i] = reinterpret_cast<const ActBlock32*>(t.xq + (i0 + i) * t.ldxq);
    acc[i] = mins[i] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < nb; ++b) {
    __m512i u[8];
    F::unpack(group + L::codes(b), u);
    const uint8_t* sc = group + L::scales(b);
    const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc)));
    for (int i = 0; i < M; ++i) {
      const ActBlock32& a = x[i][b];
      // Two chains of vpdpbusd (exact integer sums: any grouping gives the same I_b).
      __m512i s0 = F::kOff != 0
                       ? _mm512_set1_epi32(-static_cast<int32_t>(F::kOff) * sums[(i0 + i) * nb + b])
                       : _mm512_setzero_si512();
      __m512i s1 = _mm512_setzero_si512();
      for (int q = 0; q < 8; q += 2) {
        int32_t x0, x1;
        std::memcpy(&x0, a.q + 4 * q, 4);
        std::memcpy(&x1, a.q + 4 * q + 4, 4);
        s0 = _mm512_dpbusd_epi32(s0, u[q], _mm512_set1_epi32(x0));
        s1 = _mm512_dpbusd_epi32(s1, u[q + 1], _mm512_set1_epi32(x1));
      }
      const __m512 isum = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
      acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(a.d)), isum, acc[i]);
      if constexpr (F::kMin) {
        const __m512 mw =
            _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc + 32)));
        mins[i] = _mm512_fmadd_ps(mw, _mm512_set1_ps(a.ds), mins[i]);
      }
    }
  }
  const int64_t o0 = kRows * g;
  const __mmask16 valid =
      static_cast<__mmask16>(t.n_out - o0 >= kRows ? 0xFFFF : (1u << (t.n_out - o0)) - 1);
  const __m512 bias = t.bias ? _mm512_maskz_loadu_ps(valid, t.bias + o0) : _mm512_setzero_ps();
  for (int i = 0; i < M; ++i) {
    __m512 v = F::kMin ? _mm512_add_ps(acc[i], mins[i]) : acc[i];
    if (t.bias) v = _mm512_add_ps(v, bias);
    _mm512_mask_storeu_ps(t.y + (i0 + i) * t.ldy + o0, valid, v);
  }
}

template <class F>
void run(const cpu::RepackedTask& t, int64_t g0, int64_t g1) {
  const int64_t nb = t.n_in / kQK;
  const int64_t group_bytes = repacked_group_bytes(t.type, t.n_in);
  thread_local std::vector<int32_t> sums;                            // [m, nb]
  if constexpr (F::kOff != 0) avx2::legacy_block_sums(t, nb, sums);  // vpsadbw: no AVX-512 gain
  for (int64_t g = g0; g < g1; ++g) {
    const uint8_t* group = t.packed + g * group_bytes;
    int64_t i = 0;
    for (; i + kRowsPerPass <= t.m; i += kRowsPerPass) {
      pass<F, kRowsPerPass>(t, group, nb, sums.data(), g, i);
    }
    for (; i + 2 <= t.m; i += 2) pass<F, 2>(t, group, nb, sums.data(), g, i);
    for (; i < t.m; ++i) pass<F, 1>(t, group, nb, sums.data(), g, i);
  }
}

}  // namespace

bool gemm_repacked_legacy(const cpu::RepackedTask& t, int64_t g0, int64_t g1) {
  if (!core::cpu_features().avx512_vnni) return false;
  switch (t.type) {
    case QuantType::q8_0:
      return run<Q8_0>(t, g0, g1), true;
    case QuantType::q4_0:
      return run<Q4_0>(t, g0, g1), true;
    case QuantType::q4_1:
      return run<Q4_1>(t, g0, g1), true;
    case QuantType::q5_0:
      return run<Q5_0>(t, g0, g1), true;
    case QuantType::q5_1:
      return run<Q5_1>(t, g0, g1), true;
    case QuantType::iq4_nl:
      return run<Iq4Nl>(t, g0, g1), true;
    default:
      return false;
  }
}

}  // namespace qkv::kernels::quant::avx512

QKV_TARGET_END

#else  // not x86

namespace qkv::kernels::quant::avx512 {
bool gemm_repacked_legacy(const cpu::RepackedTask&, int64_t, int64_t) {
  return false;
}
}  // namespace qkv::kernels::quant::avx512

#endif
