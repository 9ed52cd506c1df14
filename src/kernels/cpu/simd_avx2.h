// SIMD traits for AVX2 + FMA + F16C (8 floats). Included only by target_avx2.cpp, after
// `#pragma GCC target`, inside namespace qkv::kernels::cpu::avx2.

struct Simd {
  using V = __m256;
  static constexpr int W = 8;
  // Register blocking of the micro-kernels (rows x vectors of columns); 16 ymm registers:
  // 6 x 2 accumulators + 2 loaded vectors + 1 broadcast.
  static constexpr int kMr = 6;
  static constexpr int kNr = 2;

  static void prefetch(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0); }
  static void prefetch_l2(const void* p) { _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1); }
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V x) { _mm256_storeu_ps(p, x); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static float hsum(V x) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // out[i] = hsum(x[i]) for 8 vectors, by a tree of horizontal adds (9 operations, not 48).
  static void hsum8(const V* x, float* out) {
    const V u0 = _mm256_hadd_ps(_mm256_hadd_ps(x[0], x[1]), _mm256_hadd_ps(x[2], x[3]));
    const V u1 = _mm256_hadd_ps(_mm256_hadd_ps(x[4], x[5]), _mm256_hadd_ps(x[6], x[7]));
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                                        _mm256_permute2f128_ps(u0, u1, 0x31)));
  }
  // hmax8's steps. Per 128-bit half: max(a0,a2) max(b0,b2) max(a1,a3) max(b1,b3); then the max
  // of each of the four inputs' four lanes.
  static __m256 max_pairs(__m256 a, __m256 b) {
    return _mm256_max_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
  }
  static __m256 max_quads(__m256 ab, __m256 cd) {
    return _mm256_max_ps(_mm256_shuffle_ps(ab, cd, 0x44), _mm256_shuffle_ps(ab, cd, 0xEE));
  }
  // out[i] = hmax(x[i]) for 8 vectors: the same tree with unpacks and max in place of hadd.
  static void hmax8(const V* x, float* out) {
    const V u0 = max_quads(max_pairs(x[0], x[1]), max_pairs(x[2], x[3]));
    const V u1 = max_quads(max_pairs(x[4], x[5]), max_pairs(x[6], x[7]));
    _mm256_storeu_ps(out, _mm256_max_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
                                        _mm256_permute2f128_ps(u0, u1, 0x31)));
  }
  static float hmax(V x) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // Lanes j (0..W-1) with lo <= base + j < hi keep x; others become -inf.
  static V mask_range(V x, float base, float lo, float hi) {
    const V idx = _mm256_add_ps(_mm256_set1_ps(base), _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7));
    const V keep = _mm256_and_ps(_mm256_cmp_ps(idx, _mm256_set1_ps(lo), _CMP_GE_OQ),
                                 _mm256_cmp_ps(idx, _mm256_set1_ps(hi), _CMP_LT_OQ));
    return _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), x, keep);
  }
  // 2^x for x <= ~0 (arguments below -126 give 0): x = n + f, f in [-0.5, 0.5], 2^f by a degree-5
  // polynomial fitted for relative error (< 1.8e-7 against float64 over the interval), 2^n through
  // the exponent bits.
  static V exp2(V x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-127.f));
    const V n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const V f = _mm256_sub_ps(x, n);
    V p = _mm256_set1_ps(1.3218676904216409e-3f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.671707637608051e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550893023610115e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022237956523895e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931468844413757e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.f));
    const __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  }
  // W consecutive elements of a k/v row converted to fp32.
  static V load_f16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static V load_bf16(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  // W signed bytes as floats (q8_0 values before their block's scale).
  static V load_i8(const int8_t* p) {
    return _mm256_cvtepi32_ps(
        _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static float f16_scalar(uint16_t h) { return _cvtsh_ss(h); }
  // Integer scores (AttentionOptions::int8_scores) with the keys in lanes: one q8_0 block of 8
  // keys at a time, transposed (an 8 x 8 dword transpose) so that lane l of c[t] holds bytes
  // 4t .. 4t + 3 of key l's 32 codes; a query row's block is then 8 steps of 4 broadcast bytes
  // against all 8 keys, whose lanes end as the keys' exact integer sums. blk: key 0's block
  // (f16 d, 32 codes), key l's at blk + l kj; keys from n on repeat key n - 1 (never stored).
  struct I8T {
    __m256i c[8];
    V scale;  // d_k of each key's block
  };
  static I8T i8_keys(const char* blk, int64_t kj, int n) {
    I8T k;
    __m256i r[8];
    alignas(32) uint16_t d[8];
    for (int l = 0; l < 8; ++l) {
      const char* row = blk + (l < n ? l : n - 1) * kj;
      r[l] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2));
      std::memcpy(&d[l], row, 2);
    }
    k.scale = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(d)));
    __m256i t[8], u[8];
    for (int g = 0; g < 2; ++g) {
      const __m256i* rg = r + 4 * g;
      t[4 * g + 0] = _mm256_unpacklo_epi32(rg[0], rg[1]);
      t[4 * g + 1] = _mm256_unpackhi_epi32(rg[0], rg[1]);
      t[4 * g + 2] = _mm256_unpacklo_epi32(rg[2], rg[3]);
      t[4 * g + 3] = _mm256_unpackhi_epi32(rg[2], rg[3]);
      u[4 * g + 0] = _mm256_unpacklo_epi64(t[4 * g + 0], t[4 * g + 2]);
      u[4 * g + 1] = _mm256_unpackhi_epi64(t[4 * g + 0], t[4 * g + 2]);
      u[4 * g + 2] = _mm256_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
      u[4 * g + 3] = _mm256_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int c = 0; c < 4; ++c) {
      k.c[c] = _mm256_permute2x128_si256(u[c], u[c + 4], 0x20);
      k.c[c + 4] = _mm256_permute2x128_si256(u[c], u[c + 4], 0x31);
    }
    return k;
  }
  // float(sum_c k q) of each key, q: the block's 32 bytes. |k| (unsigned) against q with k's sign
  // (vpmaddubsw: u8 x s8, |k| <= 128 and |q| <= 127 keep its pair sums below 2^15, so every
  // product is exact, -128 included), vpmaddwd summing the pairs of pairs.
  struct I8S {
    __m256i k[8], ak[8];
  };
  static I8S i8_signs(const I8T& k) {
    I8S s;
    for (int c = 0; c < 8; ++c) s.k[c] = k.c[c], s.ak[c] = _mm256_abs_epi8(k.c[c]);
    return s;
  }
  static V i8_keys_dot(const I8S& k, const int8_t* q) {
    __m256i acc = _mm256_setzero_si256();
    for (int c = 0; c < 8; ++c) {
      int32_t w;
      std::memcpy(&w, q + 4 * c, 4);
      const __m256i qs = _mm256_sign_epi8(_mm256_set1_epi32(w), k.k[c]);
      acc = _mm256_add_epi32(
          acc, _mm256_madd_epi16(_mm256_maddubs_epi16(k.ak[c], qs), _mm256_set1_epi16(1)));
    }
    return _mm256_cvtepi32_ps(acc);
  }
  // Stores the first n (<= W) lanes.
  static void store_n(float* p, V x, int n) {
    if (n == W) return _mm256_storeu_ps(p, x);
    alignas(32) float lanes[W];
    _mm256_store_ps(lanes, x);
    std::memcpy(p, lanes, static_cast<size_t>(n) * sizeof(float));
  }
  // Rounds fp32 lanes to bf16 precision (nearest even), kept as fp32: the bf16 mode's numerics.
  static V round_bf16(V x) {
    const __m256i u = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
    return _mm256_castsi256_ps(
        _mm256_and_si256(r, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
  }
};
