// 8 x 8 transposes of k rows into the Kᵀ tile, for targets with AVX2 (and above). Included by the
// x86 target units inside their namespace, after simd_*.h.
#define QKV_HAVE_TRANSPOSE8 1

inline __m256 load8(const void* base, DType dt, int64_t off) {
  switch (dt) {
    case DType::f16:
      return _mm256_cvtph_ps(_mm_loadu_si128(
          reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + off)));
    case DType::bf16: {
      const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(
          reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + off)));
      return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }
    case DType::q8_0: {  // off % 8 == 0: the 8 values lie in one block
      const char* block = static_cast<const char*>(base) + off / core::kQ8Elems * core::kQ8Bytes;
      const __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(block + 2 + off % core::kQ8Elems))));
      return _mm256_mul_ps(x, _mm256_set1_ps(core::q8_0_scale(block)));
    }
    default:
      return _mm256_loadu_ps(static_cast<const float*>(base) + off);
  }
}

// dst[t * ld + r] = row_r[c + t] for r, t in [0, 8), where row_r starts at element offs[r].
inline void transpose8_store(const void* base, DType dt, const int64_t* offs, int64_t c, float* dst,
                             int64_t ld) {
  const __m256 r0 = load8(base, dt, offs[0] + c), r1 = load8(base, dt, offs[1] + c);
  const __m256 r2 = load8(base, dt, offs[2] + c), r3 = load8(base, dt, offs[3] + c);
  const __m256 r4 = load8(base, dt, offs[4] + c), r5 = load8(base, dt, offs[5] + c);
  const __m256 r6 = load8(base, dt, offs[6] + c), r7 = load8(base, dt, offs[7] + c);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  _mm256_storeu_ps(dst + 0 * ld, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + 1 * ld, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * ld, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * ld, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * ld, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * ld, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * ld, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * ld, _mm256_permute2f128_ps(u3, u7, 0x31));
}
