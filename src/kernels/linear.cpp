// Linear layers: weight-type plumbing, the reference twin, and the dispatch between the
// matrix-matrix and matrix-vector paths.
#include "kernels/linear.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/parallel.h"

namespace qkv::kernels {

std::string_view weight_type_name(WeightType t) {
  switch (t) {
    case WeightType::f32:
      return "f32";
    case WeightType::f16:
      return "f16";
    case WeightType::bf16:
      return "bf16";
    case WeightType::q8_0:
      return "q8_0";
  }
  return "?";
}

int64_t weight_row_bytes(WeightType t, int64_t n_in) {
  switch (t) {
    case WeightType::f32:
      return n_in * 4;
    case WeightType::f16:
    case WeightType::bf16:
      return n_in * 2;
    case WeightType::q8_0:
      return n_in / 32 * 34;
  }
  return 0;
}

namespace {

int64_t row_stride(const WeightView& w) {
  return w.row_bytes ? w.row_bytes : weight_row_bytes(w.type, w.n_in);
}

}  // namespace

void weight_row_to_f32(const WeightView& w, int64_t row, float* out) {
  const auto* p = static_cast<const uint8_t*>(w.data) + row * row_stride(w);
  switch (w.type) {
    case WeightType::f32:
      std::memcpy(out, p, static_cast<size_t>(w.n_in) * 4);
      break;
    case WeightType::f16:
      for (int64_t i = 0; i < w.n_in; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = core::f16_to_f32(h);
      }
      break;
    case WeightType::bf16:
      for (int64_t i = 0; i < w.n_in; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = core::bf16_to_f32(h);
      }
      break;
    case WeightType::q8_0:
      for (int64_t b = 0; b < w.n_in / 32; ++b) {
        const uint8_t* blk = p + b * 34;
        uint16_t h;
        std::memcpy(&h, blk, 2);
        const float d = core::f16_to_f32(h);
        for (int j = 0; j < 32; ++j)
          out[b * 32 + j] = d * static_cast<float>(static_cast<int8_t>(blk[2 + j]));
      }
      break;
  }
}

struct Linear::Impl {
  std::vector<float> bias;
};

Linear::Linear(const WeightView& w, const float* bias) : view_(w), impl_(std::make_unique<Impl>()) {
  if (w.n_out <= 0 || w.n_in <= 0 || w.data == nullptr) {
    core::throw_invalid("Linear: weight [", w.n_out, ", ", w.n_in, "] is empty");
  }
  if (w.type == WeightType::q8_0 && w.n_in % 32 != 0) {
    core::throw_invalid("Linear: q8_0 weight needs n_in a multiple of 32, found ", w.n_in);
  }
  if (w.row_bytes != 0 && w.row_bytes < weight_row_bytes(w.type, w.n_in)) {
    core::throw_invalid("Linear: row_bytes ", w.row_bytes, " < ", weight_row_bytes(w.type, w.n_in));
  }
  if (bias) impl_->bias.assign(bias, bias + w.n_out);
}

Linear::~Linear() = default;
Linear::Linear(Linear&&) noexcept = default;
Linear& Linear::operator=(Linear&&) noexcept = default;

const float* Linear::bias() const {
  return impl_ && !impl_->bias.empty() ? impl_->bias.data() : nullptr;
}

void Linear::forward(const float* x, int64_t m, int64_t ldx, float* y, int64_t ldy,
                     int n_threads) const {
  const int64_t n_out = view_.n_out, n_in = view_.n_in;
  const float* b = bias();
  const int threads = core::resolve_threads(n_threads);
  const int64_t block = 16;
  const int64_t n_blocks = (n_out + block - 1) / block;
  core::parallel_for_dynamic(n_blocks, threads, [&](int64_t blk, int) {
    std::vector<float> w(static_cast<size_t>(n_in));
    for (int64_t o = blk * block; o < std::min(n_out, (blk + 1) * block); ++o) {
      weight_row_to_f32(view_, o, w.data());
      for (int64_t i = 0; i < m; ++i) {
        const float* xi = x + i * ldx;
        float acc = 0;
        for (int64_t k = 0; k < n_in; ++k) acc += xi[k] * w[k];
        y[i * ldy + o] = acc + (b ? b[o] : 0.0f);
      }
    }
  });
}

void linear_reference(const WeightView& w, const float* bias, const float* x, int64_t m,
                      int64_t ldx, float* y, int64_t ldy) {
  std::vector<float> row(static_cast<size_t>(w.n_in));
  for (int64_t o = 0; o < w.n_out; ++o) {
    weight_row_to_f32(w, o, row.data());
    for (int64_t i = 0; i < m; ++i) {
      double acc = bias ? bias[o] : 0.0;
      for (int64_t k = 0; k < w.n_in; ++k) acc += double(x[i * ldx + k]) * row[k];
      y[i * ldy + o] = static_cast<float>(acc);
    }
  }
}

std::string_view linear_backend_name() {
  return "scalar";
}

}  // namespace qkv::kernels
