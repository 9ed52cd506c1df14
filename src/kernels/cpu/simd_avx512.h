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
  // Integer scores (AttentionOptions::int8_scores) with the keys in lanes: one q8_0 block of
  // 16 keys at a time, transposed so that lane l of c[t] holds bytes 4t .. 4t + 3 of key l's 32
  // codes (rows l and l + 8 loaded into the two halves of one register, then an 8 x 8 dword
  // transpose within each half and a merge of 128-bit lanes). A query row's block then takes 8
  // dot-product steps of 4 broadcast bytes against all 16 keys, and the lanes end as the 16 keys'
  // exact integer sums: no horizontal reduction, and the conversion and scale product are per 16
  // keys. blk: key 0's block (f16 d, 32 codes), key l's at blk + l kj; keys from n on repeat key
  // n - 1 (their lanes are never stored).
  struct I8T {
    __m512i c[8];
    V scale;  // d_k of each key's block
  };
  static I8T i8_keys(const char* blk, int64_t kj, int n) {
    I8T k;
    const __m512i lane =
        _mm512_min_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(n - 1));
    const __m512i off = _mm512_mullo_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(kj)));
    // The scales: the first dword of each key's block (d in its low 16 bits).
    k.scale = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_i32gather_epi32(off, blk, 1)));
    __m512i r[8];
    for (int l = 0; l < 8; ++l) {
      const int lo = l < n ? l : n - 1, hi = l + 8 < n ? l + 8 : n - 1;
      r[l] = _mm512_inserti64x4(
          _mm512_castsi256_si512(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + lo * kj + 2))),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + hi * kj + 2)), 1);
    }
    // Per 128-bit lane: t = pairs of rows interleaved by dword, u[c] = dword c (lanes 0, 2) and
    // c + 4 (lanes 1, 3) of 4 rows.
    __m512i t[8], u[8];
    for (int g = 0; g < 2; ++g) {
      const __m512i* rg = r + 4 * g;
      t[4 * g + 0] = _mm512_unpacklo_epi32(rg[0], rg[1]);
      t[4 * g + 1] = _mm512_unpackhi_epi32(rg[0], rg[1]);
      t[4 * g + 2] = _mm512_unpacklo_epi32(rg[2], rg[3]);
      t[4 * g + 3] = _mm512_unpackhi_epi32(rg[2], rg[3]);
      u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g + 0], t[4 * g + 2]);
      u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g + 0], t[4 * g + 2]);
      u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
      u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    // Keys 0-3 (u[c], rows 0-3), 4-7 (u[c + 4]), 8-11, 12-15 (their high halves).
    const __m512i lo_lanes = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
    const __m512i hi_lanes = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    for (int c = 0; c < 4; ++c) {
      k.c[c] = _mm512_permutex2var_epi64(u[c], lo_lanes, u[c + 4]);
      k.c[c + 4] = _mm512_permutex2var_epi64(u[c], hi_lanes, u[c + 4]);
    }
    return k;
  }
  // float(sum_c k q) of each key, q: the block's 32 bytes. Sign trick: |k| (unsigned) against q
  // with k's sign (vpmaddubsw: u8 x s8, |k| <= 128 and |q| <= 127 keep its pair sums below 2^15,
  // so every product is exact, -128 included), vpmaddwd summing the pairs of pairs.
  struct I8S {
    __m512i ak[8];
    __mmask64 neg[8];
  };
  static I8S i8_signs(const I8T& k) {
    I8S s;
    for (int c = 0; c < 8; ++c)
      s.ak[c] = _mm512_abs_epi8(k.c[c]), s.neg[c] = _mm512_movepi8_mask(k.c[c]);
    return s;
  }
  static V i8_keys_dot(const I8S& k, const int8_t* q) {
    __m512i acc = _mm512_setzero_si512();
    for (int c = 0; c < 8; ++c) {
      int32_t w;
      std::memcpy(&w, q + 4 * c, 4);
      const __m512i qb = _mm512_set1_epi32(w);
      const __m512i qs = _mm512_mask_sub_epi8(qb, k.neg[c], _mm512_setzero_si512(), qb);
      acc = _mm512_add_epi32(
          acc, _mm512_madd_epi16(_mm512_maddubs_epi16(k.ak[c], qs), _mm512_set1_epi16(1)));
    }
    return _mm512_cvtepi32_ps(acc);
  }
  // With AVX512-VNNI (Ice Lake, Zen 4; the callers check i8_vnni()): k + 128 as unsigned bytes
  // (one xor per vector, shared by the query rows) and vpdpbusd against q, started from the bias
  // -128 sum(q) of the block, which takes the 128 back out exactly: one instruction per step
  // where the sign trick takes four.
  // QKV_I8_VNNI=0 in the environment takes the sign-trick kernel instead (what AVX-512 CPUs
  // without VNNI run), so that both are tested on a machine that has it.
  static bool i8_vnni() {
    static const bool on = [] {
      const char* env = std::getenv("QKV_I8_VNNI");
      return core::cpu_features().avx512_vnni && !(env != nullptr && env[0] == '0');
    }();
    return on;
  }
  static void i8_unsigned(I8T& k) {
    for (auto& c : k.c) c = _mm512_xor_si512(c, _mm512_set1_epi8(static_cast<char>(0x80)));
  }
  QKV_I8_VNNI static V i8_keys_dot_vnni(const I8T& ku, const int8_t* q, int32_t bias) {
    __m512i acc = _mm512_set1_epi32(bias);
    for (int c = 0; c < 8; ++c) {
      int32_t w;
      std::memcpy(&w, q + 4 * c, 4);
      acc = _mm512_dpbusd_epi32(acc, ku.c[c], _mm512_set1_epi32(w));
    }
    return _mm512_cvtepi32_ps(acc);
  }
  // Stores the first n (<= W) lanes.
  static void store_n(float* p, V x, int n) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), x);
  }
  static V round_bf16(V x) {
    const __m512i u = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
    return _mm512_castsi512_ps(
        _mm512_and_si512(r, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
  }
};
