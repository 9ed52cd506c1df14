// A small deterministic random generator for training (weight initialisation, batch sampling):
// splitmix64 over a 64-bit state, the same sequence on every platform (no std distributions).
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

namespace qkv::learn {

class Rng {
 public:
  // `stream` separates independent sequences of one seed (e.g. one per tensor).
  explicit Rng(uint64_t seed, uint64_t stream = 0) : state_(mix(seed) ^ mix(stream + 0x51ed27)) {}

  uint64_t next() {
    state_ += 0x9e3779b97f4a7c15ull;
    return mix_step(state_);
  }
  // Uniform in [0, n).
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }
  // Uniform in (0, 1].
  double uniform() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1p-53; }
  // Standard normal (Box–Muller, one value per call).
  double normal() {
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    return r * std::cos(2.0 * std::numbers::pi * uniform());
  }
  uint64_t state() const { return state_; }
  void set_state(uint64_t s) { state_ = s; }

 private:
  static uint64_t mix_step(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  static uint64_t mix(uint64_t x) { return mix_step(x + 0x9e3779b97f4a7c15ull); }
  uint64_t state_;
};

}  // namespace qkv::learn
