// Linear layers: weight-type plumbing, the reference twin, and the dispatch between the
// matrix-matrix and matrix-vector paths.
#include "kernels/linear.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/parallel.h"
#include "kernels/cpu/linear_gemm.h"
#include "kernels/cpu/linear_target.h"
#include "kernels/quant/dequant.h"
#include "kernels/quant/dot_int8.h"
#include "kernels/quant/repack.h"

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace qkv::kernels {

std::optional<quant::QuantType> weight_quant_type(WeightType t) {
  using Q = quant::QuantType;
  switch (t) {
    case WeightType::f32:
    case WeightType::f16:
    case WeightType::bf16:
      return std::nullopt;
    case WeightType::q8_0:
      return Q::q8_0;
    case WeightType::q4_0:
      return Q::q4_0;
    case WeightType::q4_1:
      return Q::q4_1;
    case WeightType::q5_0:
      return Q::q5_0;
    case WeightType::q5_1:
      return Q::q5_1;
    case WeightType::q2_k:
      return Q::q2_k;
    case WeightType::q3_k:
      return Q::q3_k;
    case WeightType::q4_k:
      return Q::q4_k;
    case WeightType::q5_k:
      return Q::q5_k;
    case WeightType::q6_k:
      return Q::q6_k;
    case WeightType::iq4_nl:
      return Q::iq4_nl;
    case WeightType::iq4_xs:
      return Q::iq4_xs;
  }
  return std::nullopt;
}

WeightType weight_type_of(quant::QuantType q) {
  static constexpr WeightType types[quant::kQuantTypeCount] = {
      WeightType::q4_0, WeightType::q4_1, WeightType::q5_0,   WeightType::q5_1,
      WeightType::q8_0, WeightType::q2_k, WeightType::q3_k,   WeightType::q4_k,
      WeightType::q5_k, WeightType::q6_k, WeightType::iq4_nl, WeightType::iq4_xs};
  return types[static_cast<int>(q)];
}

std::string_view weight_type_name(WeightType t) {
  static constexpr std::string_view names[] = {"f32",  "f16",  "bf16", "q8_0",   "q4_0",
                                               "q4_1", "q5_0", "q5_1", "q2_k",   "q3_k",
                                               "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs"};
  const auto i = static_cast<size_t>(t);
  return i < std::size(names) ? names[i] : "?";
}

int64_t weight_row_bytes(WeightType t, int64_t n_in) {
  switch (t) {
    case WeightType::f32:
      return n_in * 4;
    case WeightType::f16:
    case WeightType::bf16:
      return n_in * 2;
    default:
      return quant::quant_row_bytes(*weight_quant_type(t), n_in);
  }
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
    default:  // the block formats: the scalar dequantizer (bit-identical to ggml's)
      quant::dequantize(*weight_quant_type(w.type), p, w.n_in, out);
      break;
  }
}

namespace {

// Matrix-vector path: an item is a block of weight rows of about this many bytes, read from DRAM
// once and kept in L2 (512 KiB per Zen 3 core) while every group of kGemvRows rows of x uses it.
// 64 KiB and 1 MiB blocks measured within the noise of each other at m = 1 (2 threads).
constexpr int64_t kGemvBlockBytes = 256 << 10;

// Prefill path for weights that are not fp32 in place: each item converts a panel of up to this
// many fp32 bytes of W (per-thread scratch, LinearScratch) and multiplies it with the library on
// one thread. The library re-packs x for every panel, a cost of 1/rows of the work (f16, m = 512,
// one thread, against fp32: 256 KiB panels lost 24-45%, 1 MiB 8-40%, 4 MiB 21-24%; the final runs
// give 0.92 of fp32, docs/PERFORMANCE.md). At least two panels per thread, for balance.
constexpr int64_t kPanelBytes = 4 << 20;

// The int8 mode on interleaved weights: rows of x per work item (their quantized rows, about 2.5
// KiB each at n_in = 2048, stay in L2 while the item's groups of weights pass over them).
constexpr int64_t kRepackChunkRows = 64;

bool fp32_in_place(const WeightView& w, int64_t stride) {
  return w.type == WeightType::f32 && stride % 4 == 0 &&
         reinterpret_cast<uintptr_t>(w.data) % alignof(float) == 0;
}

void add_bias(const float* bias, int64_t m, int64_t o0, int64_t o1, float* y, int64_t ldy) {
  if (!bias) return;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = o0; o < o1; ++o) y[i * ldy + o] += bias[o];
}

// The interleaved copy of a weight: 64-byte aligned and not rounded up (a model holds ~150 of
// them, and rounding each to 2 MiB cost Q4_0 llama-1b a third more than its weights); the
// 2 MiB-aligned interior is advised to use transparent huge pages, as LargeBuffer does for the
// streams decode reads.
uint8_t* alloc_packed(size_t bytes) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = 2 << 20;
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) / kHuge * kHuge;
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) / kHuge * kHuge;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
#endif
  return static_cast<uint8_t*>(p);
}

// Whether [data, data + bytes) lies in one read-only private file mapping (a model file).
bool in_read_only_file_mapping(const void* data, size_t bytes) {
#if defined(__linux__)
  const auto lo = reinterpret_cast<uintptr_t>(data), hi = lo + bytes;
  std::FILE* f = std::fopen("/proc/self/maps", "r");
  if (!f) return false;
  char line[4096];
  bool file_backed = false;
  while (std::fgets(line, sizeof line, f)) {
    unsigned long b = 0, e = 0, inode = 0;
    char perms[8] = {};
    if (std::sscanf(line, "%lx-%lx %7s %*s %*s %lu", &b, &e, perms, &inode) != 4) continue;
    if (b <= lo && hi <= e) {
      file_backed = inode != 0 && std::strcmp(perms, "r--p") == 0;
      break;
    }
  }
  std::fclose(f);
  return file_backed;
#else
  (void)data, (void)bytes;
  return false;
#endif
}

// Once a weight is repacked, the int8 forward never reads the original. Where it lies in a
// read-only private file mapping (a model file), its whole pages are dropped from this process:
// they stay in the page cache, and the uses that still read them (embedding rows, the exact paths
// of backward_input) fault them back in. Any other memory (anonymous, writable) is left alone:
// dropping it would lose its contents. Without this, the model's peak RSS holds the file's
// pages and the copy both.
void drop_mapped_pages(const void* data, size_t bytes) {
#if defined(__linux__)
  if (!in_read_only_file_mapping(data, bytes)) return;
  const auto lo = reinterpret_cast<uintptr_t>(data), hi = lo + bytes;
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t b = (lo + page - 1) / page * page, e = hi / page * page;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
#else
  (void)data, (void)bytes;
#endif
}

}  // namespace

size_t LinearScratch::bytes() const {
  size_t n = 0;
  for (const auto& p : panels) n += p.capacity() * sizeof(float);
  return n + act.capacity();
}

void LinearScratch::release() {
  panels.clear();
  panels.shrink_to_fit();
  act.clear();
  act.shrink_to_fit();
}

struct Linear::Impl {
  std::vector<float> bias;
  // The int8 mode's interleaved copy of the weight (quant/repack.h), for the types that have a
  // layout; empty otherwise.
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> packed;
  // packed holds f16/bf16 in the interleaved layout (cpu/linear_target.h).
  bool interleaved = false;
};

namespace {

// Copies rows [g0, g1) * 16 of a row-major f16/bf16 weight into the interleaved layout, 16 x 16
// tiles at a time: read along the rows, written along the columns (both in whole lines).
void interleave_groups(const WeightView& w, int64_t g0, int64_t g1, uint8_t* out) {
  const auto* src = static_cast<const uint8_t*>(w.data);
  const int64_t stride = row_stride(w), n_in = w.n_in;
  constexpr int64_t R = cpu::kInterleaveRows;
  for (int64_t g = g0; g < g1; ++g) {
    auto* dst = reinterpret_cast<uint16_t*>(out) + g * R * n_in;
    const int64_t rows = std::min(R, w.n_out - g * R);
    for (int64_t k0 = 0; k0 < n_in; k0 += R) {
      const int64_t cols = std::min(R, n_in - k0);
      uint16_t tile[R][R] = {};
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(tile[r], src + (g * R + r) * stride + 2 * k0, static_cast<size_t>(cols) * 2);
      for (int64_t j = 0; j < cols; ++j)
        for (int64_t r = 0; r < R; ++r) dst[(k0 + j) * R + r] = tile[r][j];
    }
  }
}

}  // namespace

Linear::Linear(const WeightView& w, const float* bias, LinearDot dot, LinearLayout layout)
    : view_(w), impl_(std::make_unique<Impl>()) {
  if (w.n_out <= 0 || w.n_in <= 0 || w.data == nullptr) {
    core::throw_invalid("Linear: weight [", w.n_out, ", ", w.n_in, "] is empty");
  }
  if (const auto q = weight_quant_type(w.type); q && w.n_in % quant::quant_block_elems(*q) != 0) {
    core::throw_invalid("Linear: ", weight_type_name(w.type), " weight needs n_in a multiple of ",
                        quant::quant_block_elems(*q), ", found ", w.n_in);
  }
  if (w.row_bytes != 0 && w.row_bytes < weight_row_bytes(w.type, w.n_in)) {
    core::throw_invalid("Linear: row_bytes ", w.row_bytes, " < ", weight_row_bytes(w.type, w.n_in),
                        " (", w.n_in, " ", weight_type_name(w.type), " values)");
  }
  if (bias) impl_->bias.assign(bias, bias + w.n_out);
  const auto q = weight_quant_type(w.type);
  if (dot == LinearDot::int8 && q && quant::int8_dot_supported(*q)) dot_ = LinearDot::int8;
  const auto span =
      static_cast<size_t>((w.n_out - 1) * row_stride(w) + weight_row_bytes(w.type, w.n_in));
  if (layout == LinearLayout::interleaved &&
      (w.type == WeightType::f16 || w.type == WeightType::bf16)) {
    constexpr int64_t R = cpu::kInterleaveRows;
    const int64_t groups = (w.n_out + R - 1) / R;
    impl_->packed.reset(alloc_packed(static_cast<size_t>(groups * R * w.n_in * 2)));
    impl_->interleaved = true;
    uint8_t* out = impl_->packed.get();
    const int64_t per_item = std::max<int64_t>(1, (int64_t{1} << 20) / (R * w.n_in * 2));
    core::parallel_for_dynamic(
        (groups + per_item - 1) / per_item, core::resolve_threads(0), [&](int64_t item, int) {
          interleave_groups(w, item * per_item, std::min(groups, (item + 1) * per_item), out);
        });
    drop_mapped_pages(w.data, span);
  } else if (!q && in_read_only_file_mapping(w.data, span)) {
    // fp32/f16/bf16 rows read from a model file's mapping come in 4 KiB pages, at which one core
    // streams ~40% less than from huge pages (qkv_linear_bench's two read ceilings); decode reads
    // every weight once per token, so they are copied once into memory advised to use huge pages
    // (same rows, same arithmetic) and the file's pages are dropped from the process.
    const int64_t row = weight_row_bytes(w.type, w.n_in), src_stride = row_stride(w);
    impl_->packed.reset(alloc_packed(static_cast<size_t>(row * w.n_out)));
    uint8_t* dst = impl_->packed.get();
    const auto* src = static_cast<const uint8_t*>(w.data);
    const int64_t rows_per_item = std::max<int64_t>(1, (int64_t{1} << 20) / row);
    core::parallel_for_dynamic(
        (w.n_out + rows_per_item - 1) / rows_per_item, core::resolve_threads(0),
        [&](int64_t item, int) {
          const int64_t o0 = item * rows_per_item, o1 = std::min(w.n_out, o0 + rows_per_item);
          for (int64_t o = o0; o < o1; ++o)
            std::memcpy(dst + o * row, src + o * src_stride, static_cast<size_t>(row));
        });
    drop_mapped_pages(w.data, span);
    view_.data = dst;
    view_.row_bytes = 0;
  }
  if (dot_ == LinearDot::int8 && quant::repack_supported(*q)) {
    // Packed once, groups of 16 rows split over all threads (a model's load: each weight is read
    // from the file once here; the int8 forward never touches the original again).
    const int64_t groups = (w.n_out + quant::kRepackRows - 1) / quant::kRepackRows;
    // Not zero-filled first: repack writes every byte, and the threads fault the pages in.
    impl_->packed.reset(
        alloc_packed(static_cast<size_t>(quant::repacked_bytes(*q, w.n_out, w.n_in))));
    const int64_t per_item = 8;
    uint8_t* out = impl_->packed.get();
    core::parallel_for_dynamic(
        (groups + per_item - 1) / per_item, core::resolve_threads(0), [&](int64_t item, int) {
          quant::repack(*q, static_cast<const uint8_t*>(w.data), row_stride(w), w.n_out, w.n_in,
                        item * per_item, std::min(groups, (item + 1) * per_item), out);
        });
    drop_mapped_pages(w.data, static_cast<size_t>((w.n_out - 1) * row_stride(w) +
                                                  weight_row_bytes(w.type, w.n_in)));
  }
}

Linear::Linear() = default;
Linear::~Linear() = default;
Linear::Linear(Linear&&) noexcept = default;
Linear& Linear::operator=(Linear&&) noexcept = default;

bool Linear::interleaved() const {
  return impl_ && impl_->interleaved;
}

const float* Linear::bias() const {
  return impl_ && !impl_->bias.empty() ? impl_->bias.data() : nullptr;
}

namespace {

// Which kernels run a weight's forward (Linear::plan follows the same choice).
enum class Route : uint8_t {
  sgemv,
  gemv,
  sgemm,
  panels,
  int8,
  interleaved_gemv,
  interleaved_panels
};

Route route_of(const WeightView& v, LinearDot dot, bool interleaved, LinearPath path, int64_t m) {
  if (dot == LinearDot::int8) return Route::int8;
  const bool fp32 = fp32_in_place(v, row_stride(v));
  const bool gemv =
      path == LinearPath::automatic ? m <= linear_gemv_max_rows(v.type) : path == LinearPath::gemv;
  if (interleaved) {
    return gemv || !cpu::gemm_available() ? Route::interleaved_gemv : Route::interleaved_panels;
  }
  // One fp32 row: the library's sgemv reads W faster than our kernel (docs/PERFORMANCE.md,
  // "Linear layers": 0.78x of sgemv); f16/bf16/q8_0 rows stay on ours (no library reads them).
  if (gemv && m == 1 && path == LinearPath::automatic && cpu::gemm_available() && fp32) {
    return Route::sgemv;
  }
  if (gemv || !cpu::gemm_available()) return Route::gemv;
  return fp32 ? Route::sgemm : Route::panels;
}

}  // namespace

struct Linear::Items {
  int64_t n = 0;
  std::function<void(int64_t item, int thread)> run;
};

void Linear::forward(const float* x, int64_t m, int64_t ldx, float* y, int64_t ldy, int n_threads,
                     LinearScratch* scratch, LinearPath path) const {
  forward_on(cpu::linear_target_selected(), path, x, m, ldx, y, ldy, n_threads, scratch);
}

void Linear::forward_on(const cpu::LinearTargetOps& target, LinearPath path, const float* x,
                        int64_t m, int64_t ldx, float* y, int64_t ldy, int n_threads,
                        LinearScratch* scratch) const {
  if (!impl_) core::throw_invalid("Linear::forward on an empty (default-constructed) Linear");
  const LinearOutput out{this, y, ldy};
  forward_group_on(target, path, std::span<const LinearOutput>(&out, 1), x, m, ldx, n_threads,
                   scratch);
}

void Linear::forward_group(std::span<const LinearOutput> outs, const float* x, int64_t m,
                           int64_t ldx, int n_threads, LinearScratch* scratch, LinearPath path) {
  forward_group_on(cpu::linear_target_selected(), path, outs, x, m, ldx, n_threads, scratch);
}

void Linear::forward_group_on(const cpu::LinearTargetOps& target, LinearPath path,
                              std::span<const LinearOutput> outs, const float* x, int64_t m,
                              int64_t ldx, int n_threads, LinearScratch* scratch) {
  for (size_t j = 0; j < outs.size(); ++j) {
    const Linear* w = outs[j].w;
    if (!w || !w->impl_) {
      core::throw_invalid("Linear::forward: weight ", j, " of the group is empty");
    }
    const int64_t n_in = w->view_.n_in, n_out = w->view_.n_out, ldy = outs[j].ldy;
    if (n_in != outs[0].w->view_.n_in) {
      core::throw_invalid("Linear::forward_group: weight ", j, " has n_in ", n_in,
                          ", weight 0 has ", outs[0].w->view_.n_in, "; the group shares one x");
    }
    if (m < 0 || ldx < n_in || ldy < n_out || (m > 0 && (!x || !outs[j].y))) {
      core::throw_invalid("Linear::forward: m ", m, ", ldx ", ldx, " (n_in ", n_in, "), ldy ", ldy,
                          " (n_out ", n_out, ")");
    }
  }
  if (m == 0 || outs.empty()) return;
  const int64_t n_in = outs[0].w->view_.n_in;
  const int threads = core::resolve_threads(n_threads);
  LinearScratch local;
  LinearScratch& s = scratch ? *scratch : local;

  // The matrix-vector kernels load x in whole vectors (64 bytes on avx512). Activation buffers
  // from malloc start 16 bytes past a page, so every such load of x would straddle two cache
  // lines: the rows are copied once per call (m * n_in floats, against n_out * n_in weights) to
  // 64-byte aligned rows. Same values, same arithmetic. Measured: avx512 Q4_K, 2048 x 5632, one
  // thread of a Zen 5, G (weight x row)/s with x 16 bytes off / aligned: 14.1 / 17.3 at m = 1,
  // 17.2 / 27.1 at m = 4; f16 at m = 8: 17.1 / 23.7 (docs/PERFORMANCE.md).
  bool any_gemv = false;
  for (const LinearOutput& o : outs) {
    any_gemv |= route_of(o.w->view_, o.w->dot_, o.w->interleaved(), path, m) == Route::gemv;
  }
  thread_local std::vector<float> x_copy;  // grows only: decode calls this for every matrix
  if (any_gemv && (reinterpret_cast<uintptr_t>(x) % 64 != 0 || ldx % 16 != 0)) {
    const int64_t ld = (n_in + 15) / 16 * 16;
    if (x_copy.size() < static_cast<size_t>(m * ld + 16)) x_copy.resize(m * ld + 16);
    float* rows = x_copy.data() + (16 - reinterpret_cast<uintptr_t>(x_copy.data()) % 64 / 4) % 16;
    for (int64_t i = 0; i < m; ++i) {
      std::memcpy(rows + i * ld, x + i * ldx, static_cast<size_t>(n_in) * sizeof(float));
    }
    x = rows;
    ldx = ld;
  }

  // The int8 mode rounds each row of x once per call and block type (weights of one type share
  // it), rows 64-byte aligned: [m, ld] bytes per type, in the caller's scratch (kept across calls:
  // decode calls this for every matrix; freed by LinearScratch::release), else for this call only.
  std::vector<int64_t> xq_at(outs.size(), -1), xq_ld(outs.size(), 0);
  int64_t xq_bytes = 0;
  for (size_t j = 0; j < outs.size(); ++j) {
    const Linear& w = *outs[j].w;
    if (w.dot_ != LinearDot::int8) continue;
    const quant::QuantType q = *weight_quant_type(w.view_.type);
    xq_ld[j] = (quant::act_row_bytes(q, n_in) + 63) / 64 * 64;
    for (size_t i = 0; i < j && xq_at[j] < 0; ++i) {
      if (xq_at[i] >= 0 && outs[i].w->view_.type == w.view_.type) xq_at[j] = xq_at[i];
    }
    if (xq_at[j] < 0) {
      xq_at[j] = xq_bytes;
      xq_bytes += m * xq_ld[j];
    }
  }
  uint8_t* xq = nullptr;
  if (xq_bytes > 0) {
    if (s.act.size() < static_cast<size_t>(xq_bytes + 64)) s.act.resize(xq_bytes + 64);
    xq = s.act.data() + (64 - reinterpret_cast<uintptr_t>(s.act.data()) % 64) % 64;
    for (size_t j = 0; j < outs.size(); ++j) {
      if (xq_at[j] < 0 ||
          std::find(xq_at.begin(), xq_at.begin() + j, xq_at[j]) != xq_at.begin() + j) {
        continue;  // exact, or rounded already for an earlier weight of its type
      }
      const quant::QuantType q = *weight_quant_type(outs[j].w->view_.type);
      for (int64_t i = 0; i < m; ++i) {
        quant::quantize_act(q, x + i * ldx, n_in, xq + xq_at[j] + i * xq_ld[j]);
      }
    }
  }

  // One queue: the items of weight 0, then of weight 1, ...
  std::vector<Items> items;
  items.reserve(outs.size());
  std::vector<int64_t> first{0};  // items of weight j: [first[j], first[j + 1])
  for (size_t j = 0; j < outs.size(); ++j) {
    items.push_back(outs[j].w->plan(target, path, x, m, ldx, outs[j].y, outs[j].ldy, threads, s,
                                    xq_at[j] >= 0 ? xq + xq_at[j] : nullptr, xq_ld[j]));
    first.push_back(first.back() + items.back().n);
  }
  core::parallel_for_dynamic(first.back(), threads, [&](int64_t item, int thread) {
    size_t j = 0;
    while (item >= first[j + 1]) ++j;
    items[j].run(item - first[j], thread);
  });
}

Linear::Items Linear::plan(const cpu::LinearTargetOps& target, LinearPath path, const float* x,
                           int64_t m, int64_t ldx, float* y, int64_t ldy, int threads,
                           LinearScratch& s, const uint8_t* xq, int64_t xq_ld) const {
  const int64_t n_out = view_.n_out, n_in = view_.n_in;
  const int64_t stride = row_stride(view_);
  const auto* w = static_cast<const uint8_t*>(view_.data);
  const float* b = bias();
  switch (route_of(view_, dot_, interleaved(), path, m)) {
    case Route::sgemv:
      cpu::sgemv_n(n_out, n_in, reinterpret_cast<const float*>(w), stride / 4, x, y, threads);
      add_bias(b, 1, 0, n_out, y, ldy);
      return {};
    case Route::sgemm:
      cpu::sgemm_nt(m, n_out, n_in, x, ldx, reinterpret_cast<const float*>(w), stride / 4, y, ldy,
                    threads);
      add_bias(b, m, 0, n_out, y, ldy);
      return {};
    case Route::gemv: {
      const int64_t rows = std::clamp<int64_t>(kGemvBlockBytes / stride, 1, n_out);
      return {(n_out + rows - 1) / rows, [=, this, &target](int64_t item, int) {
                const int64_t o0 = item * rows, o1 = std::min(n_out, o0 + rows);
                for (int64_t i0 = 0; i0 < m; i0 += cpu::kGemvRows) {
                  const cpu::GemvTask t{view_.type,
                                        w,
                                        stride,
                                        n_in,
                                        x + i0 * ldx,
                                        ldx,
                                        std::min(cpu::kGemvRows, m - i0),
                                        y + i0 * ldy,
                                        ldy,
                                        b};
                  target.gemv(t, o0, o1);
                }
              }};
    }
    case Route::panels: {
      const int64_t per_thread = (n_out + 2 * threads - 1) / (2 * threads);
      const int64_t rows =
          std::clamp<int64_t>(std::min(kPanelBytes / (4 * n_in), per_thread), 1, n_out);
      // One panel buffer per thread of the loop, kept in the caller's scratch: reused across
      // calls, so repeated prefills do not fault fresh pages.
      if (s.panels.size() < static_cast<size_t>(threads)) {
        s.panels.resize(static_cast<size_t>(threads));
      }
      LinearScratch* sp = &s;
      return {(n_out + rows - 1) / rows, [=, this, &target](int64_t item, int thread) {
                const int64_t o0 = item * rows, o1 = std::min(n_out, o0 + rows);
                std::vector<float>& panel = sp->panels[static_cast<size_t>(thread)];
                if (panel.size() < static_cast<size_t>(rows * n_in)) panel.resize(rows * n_in);
                // [o1 - o0, n_in]
                target.to_f32(view_.type, w, stride, n_in, o0, o1, panel.data(), n_in);
                cpu::sgemm_nt(m, o1 - o0, n_in, x, ldx, panel.data(), n_in, y + o0, ldy, 1);
                add_bias(b, m, o0, o1, y, ldy);
              }};
    }
    case Route::interleaved_gemv: {
      // Items of about kGemvBlockBytes of weights; every row of x runs over an item's groups
      // while they are in cache. No item's split changes an output's arithmetic.
      constexpr int64_t R = cpu::kInterleaveRows;
      const int64_t groups = (n_out + R - 1) / R;
      const int64_t per_item = std::clamp<int64_t>(kGemvBlockBytes / (R * n_in * 2), 1, groups);
      const uint8_t* packed = impl_->packed.get();
      const WeightType type = view_.type;
      return {(groups + per_item - 1) / per_item, [=, &target](int64_t item, int) {
                const cpu::InterleavedTask t{type, packed, n_out, n_in, x, ldx, m, y, ldy, b};
                target.gemv_interleaved(t, item * per_item,
                                        std::min(groups, (item + 1) * per_item));
              }};
    }
    case Route::interleaved_panels: {
      // Panels of whole groups converted column-major ([n_in, 16 * groups], the layout's own
      // order) and multiplied by the library as x · panel.
      constexpr int64_t R = cpu::kInterleaveRows;
      const int64_t groups = (n_out + R - 1) / R;
      const int64_t per_thread = (groups + 2 * threads - 1) / (2 * threads);
      const int64_t per_item =
          std::clamp<int64_t>(std::min(kPanelBytes / (4 * R * n_in), per_thread), 1, groups);
      if (s.panels.size() < static_cast<size_t>(threads)) {
        s.panels.resize(static_cast<size_t>(threads));
      }
      LinearScratch* sp = &s;
      const uint8_t* packed = impl_->packed.get();
      const WeightType type = view_.type;
      return {(groups + per_item - 1) / per_item, [=, &target](int64_t item, int thread) {
                const int64_t g0 = item * per_item, g1 = std::min(groups, g0 + per_item);
                const int64_t o0 = g0 * R, o1 = std::min(n_out, g1 * R), ld = (g1 - g0) * R;
                std::vector<float>& panel = sp->panels[static_cast<size_t>(thread)];  // [n_in, ld]
                if (panel.size() < static_cast<size_t>(ld * n_in)) panel.resize(ld * n_in);
                target.interleaved_to_f32(type, packed, n_in, g0, g1, 0, n_in, panel.data(), ld);
                cpu::sgemm(false, false, m, o1 - o0, n_in, 1.0f, x, ldx, panel.data(), ld, 0.0f,
                           y + o0, ldy, 1);
                add_bias(b, m, o0, o1, y, ldy);
              }};
    }
    case Route::int8:
      break;
  }
  const quant::QuantType q = *weight_quant_type(view_.type);
  if (impl_->packed) {
    // Interleaved weights: an item is a run of groups of about kGemvBlockBytes (kept in L2) against
    // a chunk of kRepackChunkRows rows of x (also kept in L2 while the item's groups pass over it).
    // No item's split changes a row's arithmetic (quant/repack.h).
    const int64_t groups = (n_out + quant::kRepackRows - 1) / quant::kRepackRows;
    const int64_t per_item =
        std::clamp<int64_t>(kGemvBlockBytes / quant::repacked_group_bytes(q, n_in), 1, groups);
    const int64_t group_items = (groups + per_item - 1) / per_item;
    const int64_t row_items = (m + kRepackChunkRows - 1) / kRepackChunkRows;
    const uint8_t* packed = impl_->packed.get();
    return {group_items * row_items, [=, &target](int64_t item, int) {
              const int64_t g0 = item % group_items * per_item,
                            g1 = std::min(groups, g0 + per_item);
              const int64_t i0 = item / group_items * kRepackChunkRows;
              const cpu::RepackedTask t{q,
                                        packed,
                                        n_out,
                                        n_in,
                                        xq + i0 * xq_ld,
                                        xq_ld,
                                        std::min(kRepackChunkRows, m - i0),
                                        y + i0 * ldy,
                                        ldy,
                                        b};
              target.gemm_repacked(t, g0, g1);
            }};
  }
  // Items of weight rows as on the fp32 path: a block of W read once and kept in L2 while every
  // pass of rows of x uses it.
  const int64_t item_rows = std::clamp<int64_t>(kGemvBlockBytes / stride, 1, n_out);
  const WeightType type = view_.type;
  return {(n_out + item_rows - 1) / item_rows, [=, &target](int64_t item, int) {
            const int64_t o0 = item * item_rows, o1 = std::min(n_out, o0 + item_rows);
            const cpu::GemvInt8Task t{type, w, stride, n_in, xq, xq_ld, m, y, ldy, b};
            target.gemv_int8(t, o0, o1);
          }};
}

void Linear::backward_input(const float* dy, int64_t m, int64_t lddy, float* dx, int64_t lddx,
                            bool accumulate, int n_threads, LinearScratch* scratch) const {
  if (!impl_)
    core::throw_invalid("Linear::backward_input on an empty (default-constructed) Linear");
  if (m < 0 || lddy < view_.n_out || lddx < view_.n_in || (m > 0 && (!dy || !dx))) {
    core::throw_invalid("Linear::backward_input: m ", m, ", lddy ", lddy, " (n_out ", view_.n_out,
                        "), lddx ", lddx, " (n_in ", view_.n_in, ")");
  }
  if (m == 0) return;
  const int64_t n_out = view_.n_out, n_in = view_.n_in;
  const int64_t stride = row_stride(view_);
  const auto* w = static_cast<const uint8_t*>(view_.data);
  const int threads = core::resolve_threads(n_threads);
  if (fp32_in_place(view_, stride)) {
    cpu::sgemm(false, false, m, n_in, n_out, 1.0f, dy, lddy, reinterpret_cast<const float*>(w),
               stride / 4, accumulate ? 1.0f : 0.0f, dx, lddx, threads);
    return;
  }
  // Column panels of W: an item converts columns [c0, c1) of every row ([n_out, c1 - c0], about
  // kPanelBytes, per-thread scratch) and multiplies it on its thread alone into dx[:, c0:c1]. The
  // product's inner dimension is all of n_out, and no item adds into another's columns, so items
  // run side by side with no join between conversion and product. Panels of whole rows instead
  // (16 MiB, converted on all threads, then multiplied on all threads into all of dx: two joins a
  // panel, each waiting for the slowest thread) took 1.4-2.9x the forward's time at 64 rows and
  // 2.1-3.6x at 4 on f16 llama-1b shapes, 2 threads of a loaded dev; column panels 1.1-1.3x and
  // 0.8-1.1x (docs/PERFORMANCE.md, "Explain: attribution by gradients"). Block formats cut
  // columns at whole blocks; at least two panels per thread, for balance.
  if (impl_->interleaved) {
    backward_input_interleaved(dy, m, lddy, dx, lddx, accumulate, threads, scratch);
    return;
  }
  const auto quant = weight_quant_type(view_.type);
  const int64_t unit = quant ? quant::quant_block_elems(*quant) : 16;
  const int64_t per_thread = (n_in + 2 * threads - 1) / (2 * threads);
  int64_t cols = std::min(kPanelBytes / (4 * n_out), per_thread);
  cols =
      std::clamp<int64_t>((cols + unit - 1) / unit * unit, unit, (n_in + unit - 1) / unit * unit);
  LinearScratch local;
  LinearScratch& s = scratch ? *scratch : local;
  if (s.panels.size() < static_cast<size_t>(threads)) s.panels.resize(static_cast<size_t>(threads));
  const cpu::LinearTargetOps& target = cpu::linear_target_selected();
  core::parallel_for_dynamic((n_in + cols - 1) / cols, threads, [&](int64_t item, int thread) {
    const int64_t c0 = item * cols, c1 = std::min(n_in, c0 + cols), w_cols = c1 - c0;
    std::vector<float>& panel = s.panels[static_cast<size_t>(thread)];  // [n_out, c1 - c0]
    if (panel.size() < static_cast<size_t>(n_out * w_cols)) panel.resize(n_out * w_cols);
    // Columns c0.. of a row start weight_row_bytes(type, c0) bytes in (c0 a whole number of
    // blocks); the rows keep their stride.
    target.to_f32(view_.type, w + weight_row_bytes(view_.type, c0), stride, w_cols, 0, n_out,
                  panel.data(), w_cols);
    cpu::sgemm(false, false, m, w_cols, n_out, 1.0f, dy, lddy, panel.data(), w_cols,
               accumulate ? 1.0f : 0.0f, dx + c0, lddx, 1);
  });
}

// backward_input on the interleaved layout: column panels as above, converted column-major
// ([c1 - c0, 16 * groups], the layout's own order) and multiplied as dy · panelᵀ.
void Linear::backward_input_interleaved(const float* dy, int64_t m, int64_t lddy, float* dx,
                                        int64_t lddx, bool accumulate, int threads,
                                        LinearScratch* scratch) const {
  constexpr int64_t R = cpu::kInterleaveRows;
  const int64_t n_out = view_.n_out, n_in = view_.n_in, groups = (n_out + R - 1) / R;
  const int64_t ld = groups * R;
  const int64_t per_thread = (n_in + 2 * threads - 1) / (2 * threads);
  const int64_t cols = std::clamp<int64_t>(std::min(kPanelBytes / (4 * ld), per_thread), 1, n_in);
  LinearScratch local;
  LinearScratch& s = scratch ? *scratch : local;
  if (s.panels.size() < static_cast<size_t>(threads)) s.panels.resize(static_cast<size_t>(threads));
  const cpu::LinearTargetOps& target = cpu::linear_target_selected();
  core::parallel_for_dynamic((n_in + cols - 1) / cols, threads, [&](int64_t item, int thread) {
    const int64_t c0 = item * cols, c1 = std::min(n_in, c0 + cols);
    std::vector<float>& panel = s.panels[static_cast<size_t>(thread)];  // [c1 - c0, ld]
    if (panel.size() < static_cast<size_t>((c1 - c0) * ld)) panel.resize((c1 - c0) * ld);
    target.interleaved_to_f32(view_.type, impl_->packed.get(), n_in, 0, groups, c0, c1,
                              panel.data(), ld);
    cpu::sgemm(false, true, m, c1 - c0, n_out, 1.0f, dy, lddy, panel.data(), ld,
               accumulate ? 1.0f : 0.0f, dx + c0, lddx, 1);
  });
}

void linear_backward_reference(const WeightView& w, const float* dy, int64_t m, int64_t lddy,
                               float* dx, int64_t lddx) {
  std::vector<double> acc(static_cast<size_t>(m * w.n_in));
  std::vector<float> row(static_cast<size_t>(w.n_in));
  for (int64_t o = 0; o < w.n_out; ++o) {
    weight_row_to_f32(w, o, row.data());
    for (int64_t i = 0; i < m; ++i) {
      const double g = dy[i * lddy + o];
      for (int64_t k = 0; k < w.n_in; ++k) acc[static_cast<size_t>(i * w.n_in + k)] += g * row[k];
    }
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < w.n_in; ++k)
      dx[i * lddx + k] = static_cast<float>(acc[static_cast<size_t>(i * w.n_in + k)]);
}

void linear_int8_reference(const WeightView& w, const float* bias, const float* x, int64_t m,
                           int64_t ldx, float* y, int64_t ldy) {
  const auto q = weight_quant_type(w.type);
  if (!q || !quant::int8_dot_supported(*q)) {
    core::throw_invalid("linear_int8_reference: ", weight_type_name(w.type),
                        " weights have no integer dot products");
  }
  std::vector<uint8_t> xq(static_cast<size_t>(quant::act_row_bytes(*q, w.n_in)));
  const auto* base = static_cast<const uint8_t*>(w.data);
  for (int64_t i = 0; i < m; ++i) {
    quant::quantize_act_reference(*q, x + i * ldx, w.n_in, xq.data());
    for (int64_t o = 0; o < w.n_out; ++o) {
      const double dot = quant::dot_int8_reference(*q, base + o * row_stride(w), xq.data(), w.n_in);
      y[i * ldy + o] = static_cast<float>(dot + (bias ? bias[o] : 0.0));
    }
  }
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

int64_t linear_gemv_max_rows(WeightType t) {
  // Measured crossover (docs/PERFORMANCE.md, "Linear layers"; 768x3072 and 2048x2048, 1 and 2
  // threads): the matrix-vector kernels re-read each 64 KiB block of W from L2 for every 4 rows
  // of x and stay ahead of OpenBLAS's sgemm up to m = 12-16 for fp32; converted weights also pay
  // a full conversion of W per call on the GEMM path, so their kernels stay ahead up to m = 24-32.
  return t == WeightType::f32 ? 12 : 24;
}

std::string_view linear_backend_name() {
  static const std::string name =
      std::string(cpu::gemm_library_name()) + " + " + cpu::linear_target_selected().name;
  return name;
}

}  // namespace qkv::kernels
