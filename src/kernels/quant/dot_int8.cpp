// The activation quantizer of the int8 dot-product mode and its double-precision oracle
// (dot_int8.h). The SIMD kernels are dot_int8_impl.inc, compiled per target.
#include "kernels/quant/dot_int8.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/cpu_features.h"
#include "core/half.h"
#include "kernels/quant/dequant.h"

namespace qkv::kernels::quant {

bool int8_dot_supported(QuantType t) {
  switch (t) {
    case QuantType::q2_k:
    case QuantType::q3_k:
      return false;
    default:
      return true;
  }
}

namespace {

bool big_blocks(QuantType t) {
  return quant_block_elems(t) == kQKK;
}

// Rounds x[0, n) to q with d = max|x| / 127 (0 for an all-zero block): q = round(x / d), ties to
// even, in [-127, 127]. Returns d.
float round_block(const float* x, int n, int8_t* q) {
  float amax = 0.0f;
  for (int k = 0; k < n; ++k) amax = std::max(amax, std::fabs(x[k]));
  const float d = amax / 127.0f;
  const float id = d > 0.0f ? 1.0f / d : 0.0f;
  for (int k = 0; k < n; ++k) {
    q[k] = static_cast<int8_t>(std::clamp(std::nearbyint(x[k] * id), -127.0f, 127.0f));
  }
  return d;
}

// One weight block as integers: code[k] the weight's integer value at element k, sc[s] the
// integer scale of elements [16 s, 16 s + 16), mn[s] the integer min; the block's real values are
// d * sc * code + d2 * (m for Q4_1 / Q5_1) or - d2 * mn (Q4_K / Q5_K).
struct BlockInts {
  int code[kQKK];
  int sc[kQKK / 16];
  int mn[kQKK / 16];
  float d = 0;
  float d2 = 0;  // Q4_1 / Q5_1: m; the K formats: dmin; otherwise 0
};

// Q4_K and Q5_K: 8 sub-blocks of 32 codes with 6-bit scales and mins; qh (Q5_K) adds a fifth bit.
void k_block_ints(uint16_t d, uint16_t dmin, const uint8_t* scales, const uint8_t* qs,
                  const uint8_t* qh, BlockInts& b) {
  b.d = core::f16_to_f32(d);
  b.d2 = core::f16_to_f32(dmin);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, mn;
    k_scale_min(j, scales, sc, mn);
    b.sc[2 * j] = b.sc[2 * j + 1] = sc;
    b.mn[2 * j] = b.mn[2 * j + 1] = mn;
    const uint8_t* q = qs + 32 * (j / 2);
    for (int l = 0; l < 32; ++l) {
      const int low = j % 2 ? q[l] >> 4 : q[l] & 0xF;
      b.code[32 * j + l] = qh ? low | (((qh[l] >> j) & 1) << 4) : low;
    }
  }
}

void block_ints(QuantType t, const uint8_t* p, BlockInts& b) {
  const auto h = [](uint16_t v) { return core::f16_to_f32(v); };
  const int n = static_cast<int>(quant_block_elems(t));
  std::fill(b.sc, b.sc + n / 16, 1);
  std::fill(b.mn, b.mn + n / 16, 0);
  b.d2 = 0;
  switch (t) {
    case QuantType::q4_0: {
      BlockQ4_0 blk;
      std::memcpy(&blk, p, sizeof blk);
      b.d = h(blk.d);
      for (int j = 0; j < 16; ++j) {
        b.code[j] = (blk.qs[j] & 0xF) - 8;
        b.code[j + 16] = (blk.qs[j] >> 4) - 8;
      }
      return;
    }
    case QuantType::q4_1: {
      BlockQ4_1 blk;
      std::memcpy(&blk, p, sizeof blk);
      b.d = h(blk.d);
      b.d2 = h(blk.m);
      for (int j = 0; j < 16; ++j) {
        b.code[j] = blk.qs[j] & 0xF;
        b.code[j + 16] = blk.qs[j] >> 4;
      }
      return;
    }
    case QuantType::q5_0:
    case QuantType::q5_1: {
      // The two differ only in m (Q5_1) and the offset 16 (Q5_0).
      const bool q5_1 = t == QuantType::q5_1;
      uint16_t d, m = 0;
      uint32_t qh;
      uint8_t qs[16];
      if (q5_1) {
        BlockQ5_1 blk;
        std::memcpy(&blk, p, sizeof blk);
        d = blk.d;
        m = blk.m;
        std::memcpy(&qh, blk.qh, 4);
        std::memcpy(qs, blk.qs, 16);
      } else {
        BlockQ5_0 blk;
        std::memcpy(&blk, p, sizeof blk);
        d = blk.d;
        std::memcpy(&qh, blk.qh, 4);
        std::memcpy(qs, blk.qs, 16);
      }
      b.d = h(d);
      b.d2 = q5_1 ? h(m) : 0.0f;
      const int off = q5_1 ? 0 : 16;
      for (int j = 0; j < 16; ++j) {
        b.code[j] = ((qs[j] & 0xF) | (((qh >> j) & 1) << 4)) - off;
        b.code[j + 16] = ((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - off;
      }
      return;
    }
    case QuantType::iq4_nl: {
      BlockIq4Nl blk;
      std::memcpy(&blk, p, sizeof blk);
      b.d = h(blk.d);
      for (int j = 0; j < 16; ++j) {
        b.code[j] = kIq4nlValues[blk.qs[j] & 0xF];
        b.code[j + 16] = kIq4nlValues[blk.qs[j] >> 4];
      }
      return;
    }
    case QuantType::iq4_xs: {
      BlockIq4Xs blk;
      std::memcpy(&blk, p, sizeof blk);
      b.d = h(blk.d);
      for (int s = 0; s < 8; ++s) {
        const int ls =
            ((blk.scales_l[s / 2] >> (4 * (s % 2))) & 0xF) | (((blk.scales_h >> (2 * s)) & 3) << 4);
        b.sc[2 * s] = b.sc[2 * s + 1] = ls - 32;
        for (int j = 0; j < 16; ++j) {
          b.code[32 * s + j] = kIq4nlValues[blk.qs[16 * s + j] & 0xF];
          b.code[32 * s + j + 16] = kIq4nlValues[blk.qs[16 * s + j] >> 4];
        }
      }
      return;
    }
    case QuantType::q5_k: {
      BlockQ5K blk;
      std::memcpy(&blk, p, sizeof blk);
      k_block_ints(blk.d, blk.dmin, blk.scales, blk.qs, blk.qh, b);
      return;
    }
    case QuantType::q8_0: {
      BlockQ8_0 blk;
      std::memcpy(&blk, p, sizeof blk);
      b.d = h(blk.d);
      for (int j = 0; j < 32; ++j) b.code[j] = blk.qs[j];
      return;
    }
    case QuantType::q4_k: {
      BlockQ4K blk;
      std::memcpy(&blk, p, sizeof blk);
      k_block_ints(blk.d, blk.dmin, blk.scales, blk.qs, nullptr, b);
      return;
    }
    case QuantType::q6_k: {
      BlockQ6K blk;
      std::memcpy(&blk, p, sizeof blk);
      b.d = h(blk.d);
      for (int s = 0; s < 16; ++s) b.sc[s] = blk.scales[s];
      for (int half = 0; half < 2; ++half) {
        const uint8_t* ql = blk.ql + 64 * half;
        const uint8_t* qh = blk.qh + 32 * half;
        int* c = b.code + 128 * half;
        for (int l = 0; l < 32; ++l) {
          c[l] = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
          c[l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
          c[l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
          c[l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        }
      }
      return;
    }
    default:
      return;
  }
}

}  // namespace

int64_t act_row_bytes(QuantType t, int64_t n) {
  return big_blocks(t) ? n / kQKK * static_cast<int64_t>(sizeof(ActBlock256))
                       : n / kQK * static_cast<int64_t>(sizeof(ActBlock32));
}

void quantize_act(QuantType t, const float* x, int64_t n, void* out) {
  static const bool simd = core::cpu_features().has_avx2_target();
  if (simd) {
    avx2::quantize_act(t, x, n, out);
  } else {
    quantize_act_reference(t, x, n, out);
  }
}

void quantize_act_reference(QuantType t, const float* x, int64_t n, void* out) {
  if (big_blocks(t)) {
    auto* a = static_cast<ActBlock256*>(out);
    for (int64_t b = 0; b < n / kQKK; ++b, x += kQKK) {
      a[b].d = round_block(x, kQKK, a[b].q);
      for (int s = 0; s < kQKK / 16; ++s) {
        int sum = 0;
        for (int k = 0; k < 16; ++k) sum += a[b].q[16 * s + k];
        a[b].bsums[s] = static_cast<int16_t>(sum);
      }
    }
  } else {
    auto* a = static_cast<ActBlock32*>(out);
    for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
      a[b].d = round_block(x, kQK, a[b].q);
      int sum = 0;
      for (int k = 0; k < kQK; ++k) sum += a[b].q[k];
      a[b].ds = a[b].d * static_cast<float>(sum);
    }
  }
}

double dot_int8_reference(QuantType t, const uint8_t* w_row, const void* act_row, int64_t n,
                          double* abs_sum) {
  const int64_t elems = quant_block_elems(t), bytes = quant_block_bytes(t);
  const bool big = big_blocks(t);
  double sum = 0, abs = 0;
  BlockInts w;
  for (int64_t b = 0; b < n / elems; ++b) {
    block_ints(t, w_row + b * bytes, w);
    const int8_t* q;
    double da, ds = 0;
    if (big) {
      const ActBlock256& a = static_cast<const ActBlock256*>(act_row)[b];
      q = a.q;
      da = a.d;
    } else {
      const ActBlock32& a = static_cast<const ActBlock32*>(act_row)[b];
      q = a.q;
      da = a.d;
      ds = a.ds;
    }
    int64_t isum = 0, msum = 0, iabs = 0, mabs = 0;
    for (int s = 0; s < elems / 16; ++s) {
      int64_t part = 0, qsum = 0;
      for (int k = 16 * s; k < 16 * s + 16; ++k) {
        part += int64_t{w.code[k]} * q[k];
        qsum += q[k];
        iabs += std::abs(int64_t{w.sc[s]} * w.code[k] * q[k]);
        mabs += std::abs(int64_t{w.mn[s]} * q[k]);
      }
      isum += w.sc[s] * part;
      msum += w.mn[s] * qsum;
    }
    const double main = double(w.d) * da * double(isum);
    // The mins: Q4_K / Q5_K subtract dmin * mn per sub-block; Q4_1 / Q5_1 add m to every weight,
    // m * (d_a * sum(q)) with the activation's own fp32 d_a * sum(q).
    double extra = 0, extra_abs = 0;
    if (t == QuantType::q4_k || t == QuantType::q5_k) {
      extra = -double(w.d2) * da * double(msum);
      extra_abs = std::fabs(double(w.d2) * da) * double(mabs);
    } else if (t == QuantType::q4_1 || t == QuantType::q5_1) {
      extra = double(w.d2) * ds;
      int64_t qabs = 0;
      for (int k = 0; k < elems; ++k) qabs += std::abs(int{q[k]});
      extra_abs = std::fabs(double(w.d2) * da) * double(qabs);
    }
    sum += main + extra;
    abs += std::fabs(double(w.d) * da) * double(iabs) + extra_abs;
  }
  if (abs_sum) *abs_sum = abs;
  return sum;
}

}  // namespace qkv::kernels::quant
