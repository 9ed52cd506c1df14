// SIMD traits for any CPU: one float per "vector". Included only by target_generic.cpp inside
// namespace qkv::kernels::cpu::generic. Same algorithm as the vector targets, so the tests that run
// every target compare like with like.

struct Simd {
  using V = float;
  static constexpr int W = 1;
  static constexpr int kMr = 4;
  static constexpr int kNr = 4;

  static void prefetch(const void*) {}
  static void prefetch_l2(const void*) {}
  static V zero() { return 0.f; }
  static V set1(float x) { return x; }
  static V load(const float* p) { return *p; }
  static void store(float* p, V x) { *p = x; }
  static V fmadd(V a, V b, V c) { return a * b + c; }
  static V mul(V a, V b) { return a * b; }
  static V add(V a, V b) { return a + b; }
  static V max(V a, V b) { return a > b ? a : b; }
  static float hsum(V x) { return x; }
  static float hmax(V x) { return x; }
  static void hsum8(const V* x, float* out) {
    for (int i = 0; i < 8; ++i) out[i] = x[i];
  }
  static void hmax8(const V* x, float* out) {
    for (int i = 0; i < 8; ++i) out[i] = x[i];
  }
  static V mask_range(V x, float base, float lo, float hi) {
    return (base >= lo && base < hi) ? x : -INFINITY;
  }
  static V exp2(V x) { return x < -127.f ? 0.f : std::exp2(x); }
  static V load_f16(const uint16_t* p) { return core::f16_to_f32(*p); }
  static V load_bf16(const uint16_t* p) { return core::bf16_to_f32(*p); }
  static V load_i8(const int8_t* p) { return static_cast<float>(*p); }
  static float f16_scalar(uint16_t h) { return core::f16_to_f32(h); }
  // Integer scores (AttentionOptions::int8_scores): one key's q8_0 block per step, its 32
  // products summed exactly in an int, as the vector targets' lanes are.
  struct I8T {
    const int8_t* k;
    V scale;  // d_k
  };
  static I8T i8_keys(const char* blk, int64_t, int) {
    uint16_t d;
    std::memcpy(&d, blk, 2);
    return {reinterpret_cast<const int8_t*>(blk + 2), core::f16_to_f32(d)};
  }
  using I8S = I8T;
  static I8S i8_signs(const I8T& k) { return k; }
  static V i8_keys_dot(const I8S& k, const int8_t* q) {
    int32_t sum = 0;
    for (int c = 0; c < 32; ++c) sum += int32_t{k.k[c]} * int32_t{q[c]};
    return static_cast<float>(sum);
  }
  static void store_n(float* p, V x, int) { *p = x; }
  static V round_bf16(V x) { return core::bf16_to_f32(core::f32_to_bf16(x)); }
};
