// SIMD traits for AVX-512 F/BW/DQ/VL (16 floats). Included only by target_avx512.cpp, after
// `#pragma GCC target`, inside namespace qkv::kernels::cpu::avx512.

// The int8 scores' AVX512-VNNI kernels: the target's instruction sets plus VNNI, for functions
// that run only where cpuid reports it (Simd::i8_vnni).
#define QKV_I8_VNNI __attribute__((target(QKV_TARGET_AVX512 ",avx512vnni")))

struct Simd {
  using V = __m512;
  static constexpr int W = 16;
  // 32 zmm registers: 12 x 2 accumulators + 2 loaded vectors + 1 broadcast.
  static constexpr int kMr = 12;
  static constexpr int kNr = 2;

  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
  static void prefetch_l2(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1); }
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V x) { _mm512_storeu_ps(p, x); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static float hsum(V x) { return _mm512_reduce_add_ps(x); }
  static float hmax(V x) { return _mm512_reduce_max_ps(x); }
  // out[i] = hmax(x[i]) for 8 vectors (one reduction each, as hmax: this target cannot be run on
  // the development machine, so it keeps the reduction its tests have covered).
  static void hmax8(const V* x, float* out) {
    for (int i = 0; i < 8; ++i) out[i] = _mm512_reduce_max_ps(x[i]);
  }
  // out[i] = hsum(x[i]) for 8 vectors: halves added, then a tree of 256-bit horizontal adds.
  static void hsum8(const V* x, float* out) {
    __m256 h[8];
    for (int i = 0; i < 8; ++i) {
      h[i] = _mm256_add_ps(_mm512_castps512_ps256(x[i]),
                           _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x[i]), 1)));
    }
    const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
    const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(h[4], h[5]), _mm256_hadd_ps(h[6], h[7]));
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                                        _mm256_permute2f128_ps(u0, u1, 0x31)));
  }
  static V mask_range(V x, float base, float lo, float hi) {
    const V idx = _mm512_add_ps(
        _mm512_set1_ps(base), _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    const __mmask16 keep = _mm512_cmp_ps_mask(idx, _mm512_set1_ps(lo), _CMP_GE_OQ) &
                           _mm512_cmp_ps_mask(idx, _mm512_set1_ps(hi), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(keep, _mm512_set1_ps(-INFINITY), x);
  }
  // See simd_avx2.h; the same polynomial.
  static V exp2(V x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-127.f));
    const V n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const V f = _mm512_sub_ps(x, n);
    V p = _mm512_set1_ps(1.3218676904216409e-3f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.671707637608051e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550893023610115e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022237956523895e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931468844413757e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.f));
    const __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  }
  static V load_f16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static V load_bf16(const uint16_t* p) {
    const __m512i w =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
  // W signed bytes as floats (q8_0 values before their block's scale).
  static V load_i8(const int8_t* p) {
    return _mm512_cvtepi32_ps(
        _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static float f16_scalar(uint16_t h) { return _cvtsh_ss(h); }
  // Integer scores (AttentionOptions::int8_scores): NB (1 or 2) q8_0 blocks of a K row per step,
  // 64 bytes in one register. The K bytes go in as |k| (unsigned) and their signs move onto q, as
  // vpmaddubsw needs (u8 x s8: |k| <= 128 and |q| <= 127 keep its pair sums below 2^15, so the
  // products are exact for every byte, -128 included); vpmaddwd then sums pairs of pairs into 16
  // int32 lanes, 8 per block, converted and multiplied by the blocks' d_k d_q.
  static constexpr int kI8Blocks = 2;
  struct I8K {
    __m512i ak;     // |k|
    __mmask64 neg;  // k < 0
    V scale;        // d_k of each block, 8 lanes per block (0 past NB)
  };
  template <int NB>
  static I8K i8_load(const char* blk) {  // blk: a block (f16 d, 32 bytes); the next 34 bytes on
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    uint16_t d0, d1 = 0;
    std::memcpy(&d0, blk, 2);
    __m512i k = _mm512_zextsi256_si512(lo);
    if constexpr (NB == 2) {
      std::memcpy(&d1, blk + 34, 2);
      k = _mm512_inserti64x4(k, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 36)), 1);
    }
    const V scale = _mm512_cvtph_ps(_mm256_set_m128i(_mm_set1_epi16(static_cast<short>(d1)),
                                                     _mm_set1_epi16(static_cast<short>(d0))));
    return {_mm512_abs_epi8(k), _mm512_movepi8_mask(k), scale};
  }
  // acc + the lanes of sum(k q) times d_k d_q; q: the NB blocks' 32 NB bytes, qd: d_q of each
  // block 8 times (8 NB floats).
  template <int NB>
  static V i8_dot(const I8K& k, const int8_t* q, const float* qd, V acc) {
    __m512i qv;
    V dq;
    if constexpr (NB == 2) {
      qv = _mm512_loadu_si512(q);
      dq = _mm512_loadu_ps(qd);
    } else {
      qv = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)));
      dq = _mm512_zextps256_ps512(_mm256_loadu_ps(qd));
    }
    const __m512i qs = _mm512_mask_sub_epi8(qv, k.neg, _mm512_setzero_si512(), qv);
    const __m512i sums = _mm512_madd_epi16(_mm512_maddubs_epi16(k.ak, qs), _mm512_set1_epi16(1));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(k.scale, dq), acc);
  }
  // With AVX512-VNNI (Ice Lake, Zen 4; run_item's caller checks i8_vnni()): k + 128 as unsigned
  // bytes (one xor, shared by the G query rows) and vpdpbusd against q, started from the bias
  // -128 sum(q) of the block (8 lanes of -16 sum(q)), which takes the 128 back out exactly: one
  // instruction per row and step where the sign trick takes four.
  // QKV_I8_VNNI=0 in the environment takes the sign-trick kernel instead (what AVX-512 CPUs
  // without VNNI run), so that both are tested on a machine that has it.
  static bool i8_vnni() {
    static const bool on = [] {
      const char* env = std::getenv("QKV_I8_VNNI");
      return core::cpu_features().avx512_vnni && !(env != nullptr && env[0] == '0');
    }();
    return on;
  }
  struct I8KU {
    __m512i ku;  // k ^ 0x80 = k + 128
    V scale;
  };
  template <int NB>
  static I8KU i8_load_u(const char* blk) {
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    uint16_t d0, d1 = 0;
    std::memcpy(&d0, blk, 2);
    __m512i k = _mm512_zextsi256_si512(lo);
    if constexpr (NB == 2) {
      std::memcpy(&d1, blk + 34, 2);
      k = _mm512_inserti64x4(k, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 36)), 1);
    }
    const V scale = _mm512_cvtph_ps(_mm256_set_m128i(_mm_set1_epi16(static_cast<short>(d1)),
                                                     _mm_set1_epi16(static_cast<short>(d0))));
    // Past NB the lanes stay 0: q and the bias are 0 there, whatever k + 128 is.
    return {_mm512_xor_si512(k, _mm512_set1_epi8(static_cast<char>(0x80))), scale};
  }
  template <int NB>
  QKV_I8_VNNI static V i8_dot_vnni(const I8KU& k, const int8_t* q, const int32_t* bias,
                                   const float* qd, V acc) {
    __m512i qv, b;
    V dq;
    if constexpr (NB == 2) {
      qv = _mm512_loadu_si512(q);
      b = _mm512_loadu_si512(bias);
      dq = _mm512_loadu_ps(qd);
    } else {
      qv = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)));
      b = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bias)));
      dq = _mm512_zextps256_ps512(_mm256_loadu_ps(qd));
    }
    const __m512i sums = _mm512_dpbusd_epi32(b, k.ku, qv);
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), _mm512_mul_ps(k.scale, dq), acc);
  }
  static V round_bf16(V x) {
    const __m512i u = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
    return _mm512_castsi512_ps(
        _mm512_and_si512(r, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
  }
};
