// Linear layers: y = x · Wᵀ (+ bias) with fp32 activations and weights stored as f32, f16, bf16 or
// one of ggml's block formats (Q8_0, Q4_K, ...: quant/blocks.h), row-major [n_out, n_in] (the
// layout of GGUF, safetensors nn.Linear and llama2.c). Each tensor has its own type, so a file
// that mixes block types (Q4_K_M: Q4_K and Q6_K) needs nothing special.
//
// By default activations stay fp32: block-format weights are decoded to fp32 (exactly as the
// scalar dequantizer, quant/dequant.h) and multiplied with fp32 FMAs, so the products differ from
// exact arithmetic on the dequantized weights only by fp32 summation order. The opt-in
// LinearDot::int8 mode instead rounds each row of x to 8-bit blocks once per call and multiplies in
// integers, as llama.cpp does (quant/dot_int8.h): faster where decode is bound by unpacking the
// weights rather than by reading them, at a measured cost in accuracy (docs/PERFORMANCE.md,
// "Integer dot products"; llama.cpp's own rounding costs it 1.1-1.7% of the logits' standard
// deviation on ../shared/fixtures/gguf-quant).
//
// Two paths behind one call: matrix-matrix products (prefill, m > a few rows) and
// matrix-vector products (decode, bound by the bytes of the weights). `Linear` prepares a weight
// once and is then used from any thread; it keeps no copy of the weights (fp32 is used in place,
// other types are widened per call). `linear_reference` is the naive double-accumulating twin.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "kernels/quant/blocks.h"

namespace qkv::kernels {

namespace cpu {
struct LinearTargetOps;
}

enum class WeightType : uint8_t {
  f32,
  f16,
  bf16,
  q8_0,
  q4_0,
  q4_1,
  q5_0,
  q5_1,
  q2_k,
  q3_k,
  q4_k,
  q5_k,
  q6_k,
  iq4_nl,
  iq4_xs
};

// The block format of a quantized weight type (q8_0 included); nullopt for f32/f16/bf16.
std::optional<quant::QuantType> weight_quant_type(WeightType t);
WeightType weight_type_of(quant::QuantType q);

// How products with block-format weights treat the activations (see the top of this file).
// int8 applies to the types with integer kernels (quant::int8_dot_supported: every block format
// but Q2_K and Q3_K); those two, and f32/f16/bf16, stay exact. In int8 mode every m, prefill included, runs
// the integer kernels (not the GEMM library), so a row's result never depends on the batch.
enum class LinearDot : uint8_t { exact, int8 };

// How Linear holds a weight. rows: as given (fp32/f16/bf16 that lie in a read-only file mapping
// are copied to huge pages, rows unchanged; block formats are read in place). interleaved:
// f16/bf16 weights are copied once into the matrix-vector kernels' layout (groups of 16 rows,
// cpu/linear_target.h), which decode streams at the read rate of one sequence, and their rows
// keep the arithmetic that layout states (not the bits of the rows layout); a copy that came
// from a file mapping drops the file's pages. Other types ignore it. Models load with
// interleaved.
enum class LinearLayout : uint8_t { rows, interleaved };

// Which of the two paths a forward takes: by m (automatic), or forced (tests, benchmarks).
enum class LinearPath : uint8_t { automatic, gemv, gemm };

std::string_view weight_type_name(WeightType t);
// Bytes of one row of `n_in` elements (n_in must be a multiple of the block size: 32, or 256 for
// the K formats and IQ4_XS).
int64_t weight_row_bytes(WeightType t, int64_t n_in);

// A row-major weight matrix [n_out, n_in]; rows are `row_bytes` apart (weight_row_bytes when
// packed). The memory is borrowed (usually a memory-mapped model file) and must outlive users.
struct WeightView {
  WeightType type = WeightType::f32;
  int64_t n_out = 0;
  int64_t n_in = 0;
  const void* data = nullptr;
  int64_t row_bytes = 0;  // 0: packed
};

// Converts row `row` of `w` to fp32 (n_in values), e.g. an embedding lookup.
void weight_row_to_f32(const WeightView& w, int64_t row, float* out);

// Converted weight panels of Linear::forward's GEMM path (weights that are not fp32 in place),
// one buffer per thread, each grown to the largest panel it has held. Owned by the caller (a
// Session's workspace), so that a long-lived process can bound and free the memory.
struct LinearScratch {
  std::vector<std::vector<float>> panels;  // [thread][rows * n_in]
  std::vector<uint8_t> act;                // the int8 mode's rounded rows of x
  size_t bytes() const;
  void release();
};

class Linear;

// One weight of a group product (Linear::forward_group) and where its result goes: y = x · Wᵀ +
// bias, [m, n_out] with rows ldy floats apart.
struct LinearOutput {
  const Linear* w = nullptr;
  float* y = nullptr;
  int64_t ldy = 0;
};

class Linear {
 public:
  Linear();
  // `bias` (n_out floats, may be null) is copied. Throws InvalidArgument on bad sizes. `dot`:
  // LinearDot::int8 takes effect only for the types with integer kernels (dot() says which).
  explicit Linear(const WeightView& w, const float* bias = nullptr,
                  LinearDot dot = LinearDot::exact, LinearLayout layout = LinearLayout::rows);
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;

  // y[i, :] = x[i, :] · Wᵀ + bias for i < m. x rows are `ldx` floats apart, y rows `ldy`.
  // n_threads 0: all hardware threads. `scratch` null: panels allocated for this call only.
  // `path`: LinearPath::gemv keeps every row on the matrix-vector kernels, whose result for a row
  // is the same whatever the other rows and their number (batch-invariant).
  void forward(const float* x, int64_t m, int64_t ldx, float* y, int64_t ldy, int n_threads = 0,
               LinearScratch* scratch = nullptr, LinearPath path = LinearPath::automatic) const;
  // The same with a chosen SIMD target for the matrix-vector kernels and the weight conversion
  // (tests run every target the CPU has; see cpu/linear_target.h).
  // `path` forces the matrix-vector kernels or the GEMM library (which falls back to the former
  // when the build has no library).
  void forward_on(const cpu::LinearTargetOps& target, LinearPath path, const float* x, int64_t m,
                  int64_t ldx, float* y, int64_t ldy, int n_threads = 0,
                  LinearScratch* scratch = nullptr) const;

  // Several weights times the same x (every weight's n_in, rows ldx floats apart) in one parallel
  // region: the work items of all of them are handed out from one queue, so a thread that has
  // finished its share of one weight goes on to the next instead of waiting for the others at a
  // join (decode: Q, K and V; gate and up). Every y is bit-identical to forward() of its weight
  // alone: the items split rows, never a row's sum. Products that the GEMM library runs on all
  // threads by itself (fp32 weights in place) still run one after another.
  static void forward_group(std::span<const LinearOutput> outs, const float* x, int64_t m,
                            int64_t ldx, int n_threads = 0, LinearScratch* scratch = nullptr,
                            LinearPath path = LinearPath::automatic);
  static void forward_group_on(const cpu::LinearTargetOps& target, LinearPath path,
                               std::span<const LinearOutput> outs, const float* x, int64_t m,
                               int64_t ldx, int n_threads = 0, LinearScratch* scratch = nullptr);

  // The input gradient of forward(): dx[i, :] = dy[i, :] · W for i < m (dx overwritten, or added
  // to when `accumulate`); the bias takes no part. For backward passes that need no weight
  // gradients (attribution): fp32 weights are used in place, other types are decoded to fp32
  // panels of rows (exactly as forward's conversion; interleaved f16/bf16: column-major panels of
  // their groups) and multiplied by the GEMM library.
  void backward_input(const float* dy, int64_t m, int64_t lddy, float* dx, int64_t lddx,
                      bool accumulate, int n_threads = 0, LinearScratch* scratch = nullptr) const;

  int64_t n_in() const { return view_.n_in; }
  int64_t n_out() const { return view_.n_out; }
  // The weight as given (for the rows layout, its huge-page copy where one was made); an
  // interleaved Linear never reads it, and reading it faults dropped file pages back in.
  const WeightView& view() const { return view_; }
  const float* bias() const;
  // The mode forward() uses: int8 only where it was asked for and the type has integer kernels.
  LinearDot dot() const { return dot_; }
  // Whether the weight is held in the interleaved layout (LinearLayout::interleaved on f16/bf16).
  bool interleaved() const;

  struct Impl;

 private:
  struct Items;
  // The work of one forward as items for a shared queue (Items::n of them; none where the GEMM
  // library ran the product right here on all threads). x as forward's; `xq`: x rounded for this
  // weight's type (int8 mode), rows xq_ld bytes apart.
  Items plan(const cpu::LinearTargetOps& target, LinearPath path, const float* x, int64_t m,
             int64_t ldx, float* y, int64_t ldy, int threads, LinearScratch& scratch,
             const uint8_t* xq, int64_t xq_ld) const;
  void backward_input_interleaved(const float* dy, int64_t m, int64_t lddy, float* dx, int64_t lddx,
                                  bool accumulate, int threads, LinearScratch* scratch) const;

  WeightView view_{};
  LinearDot dot_ = LinearDot::exact;
  std::unique_ptr<Impl> impl_;
};

// The oracle: double accumulation, one row at a time.
void linear_reference(const WeightView& w, const float* bias, const float* x, int64_t m,
                      int64_t ldx, float* y, int64_t ldy);

// The oracle of LinearDot::int8: each row of x rounded to 8-bit blocks (quant::quantize_act), the
// integer block sums exact and combined in double (quant::dot_int8_reference). `w` must have
// integer kernels (quant::int8_dot_supported).
void linear_int8_reference(const WeightView& w, const float* bias, const float* x, int64_t m,
                           int64_t ldx, float* y, int64_t ldy);

// The twin of Linear::backward_input: dx[i, :] = dy[i, :] · W in double, one row at a time.
void linear_backward_reference(const WeightView& w, const float* dy, int64_t m, int64_t lddy,
                               float* dx, int64_t lddx);

// Where the time of a forward goes, for benchmarks: the name of the GEMM library and the
// matrix-vector kernel target in use, e.g. "openblas-openmp 0.3.21 (Zen) + avx2".
std::string_view linear_backend_name();

// Rows of x up to which forward() uses the matrix-vector kernels for this weight type; above it,
// the GEMM library (measured crossover, docs/PERFORMANCE.md "Linear layers").
int64_t linear_gemv_max_rows(WeightType t);

}  // namespace qkv::kernels
