// qkv — exact scaled dot-product attention.
//
//   out[b, i, h, :] = sum_j softmax_j(s[b, h, i, j]) * v[b, j, h / group, :]
//   s[b, h, i, j]   = scale * <q[b, i, h, :], k[b, j, h / group, :]>   (+ soft-cap, ALiBi, masks)
//
// Shapes (a View4 may have any strides, so [batch, head, seq, dim] storage works without copies):
//   q    [batch, n_q,  n_head,    head_dim]     fp32
//   k    [batch, n_kv, n_head_kv, head_dim]     fp32, f16, bf16 or q8_0 (blocks along head_dim;
//                                                head_dim a multiple of 32: see dtype.h)
//   v    [batch, n_kv, n_head_kv, head_dim_v]   same dtype as k
//   out  [batch, n_q,  n_head,    head_dim_v]   fp32
//   lse  [batch, n_head, n_q]                   fp32, dense, optional (an empty span):
//                                                log(sum_j exp(s[b,h,i,j]))
// n_head must be a multiple of n_head_kv (group = n_head / n_head_kv): MHA, GQA and MQA.
//
// Query positions. Query i of sequence b sits at position
//   pos(b, i) = q_offsets[b] + i            when q_offsets is given,
//   pos(b, i) = n_kv - n_q + i              otherwise ("bottom-right" alignment),
// which is the KV-cache convention: new queries are the last n_q tokens of the key sequence.
// Causal masking, sliding windows and ALiBi are all defined from pos(b, i) and the key index j.
//
// Masks compose; key j is attended by query i only if every active rule allows it:
//   causal        j <= pos
//   kv_lengths    j <  kv_lengths[b]                     (per-sequence key padding)
//   window        pos - window_left <= j <= pos + window_right  (-1 = unbounded on that side)
//   mask boolean  mask[i, j] != 0                        (broadcast over batch and heads)
// and the score gets, in this order: soft-capping cap * tanh(s / cap), the ALiBi bias
// -slope[h] * |pos - j|, and the additive mask[i, j] (-inf allowed).
// A query with no attended key gets out = 0 and lse = -inf (never NaN).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "qkv/dtype.h"

namespace qkv {

enum class MaskKind : uint8_t { none, boolean, additive };

// An explicit [n_q, n_kv] mask, broadcast over batch and heads. stride_q = 0 repeats one row.
struct AttentionMask {
  MaskKind kind = MaskKind::none;
  const void* data = nullptr;  // boolean: uint8_t, non-zero = attend; additive: float
  int64_t n_q = 0;
  int64_t n_kv = 0;
  int64_t stride_q = 0;  // elements between rows
  int64_t stride_kv = 1;
};

enum class Backend : uint8_t {
  automatic,  // the fastest available
  reference,  // naive, materialised, double accumulation: the oracle
  cpu,        // tiled online softmax with SIMD and threads
};

enum class Precision : uint8_t {
  f32,   // fp32 products and accumulation
  bf16,  // q, k, probabilities and v rounded to bf16, products accumulated in fp32;
         // multiplies on AMX tiles or with AVX512_BF16 dot products where the CPU has them
         // (see docs/PERFORMANCE.md)
};

struct AttentionOptions {
  float scale = 0.f;  // 0: 1 / sqrt(head_dim)
  bool causal = false;
  // The per-sequence and per-head arrays are views of the caller's memory; empty means "not
  // given". A non-empty one must have exactly the size shown (InvalidArgument naming both sizes
  // otherwise).
  std::span<const int32_t> kv_lengths;  // [batch] or empty
  std::span<const int32_t> q_offsets;   // [batch] or empty; see "Query positions" above
  int64_t window_left = -1;             // -1: unbounded
  int64_t window_right = -1;            // -1: unbounded
  AttentionMask mask;
  std::span<const float> alibi_slopes;  // [n_head] or empty
  float softcap = 0.f;                  // 0: off
  Precision precision = Precision::f32;
  // Scores of a q8_0 k by integer dot products, as llama.cpp computes them: each query row, times
  // `scale`, is rounded to blocks of 32 int8 values with one fp32 d (d = max|x| / 127, q =
  // round(x / d): the int8 mode of the linear layers, DotProducts::int8 in qkv/model.h), and
  //   s[b, h, i, j] = sum_blocks d_q d_k sum(q k)          (exact integer block sums)
  // replaces scale * <q, k>. It applies to decode, i.e. calls with n_head / n_head_kv * n_q <= 8
  // query rows per kv head (the CPU's decode kernels); longer query blocks (prefill) and other k
  // dtypes keep fp32 scores, and attention_probs follows the same rule, so its probabilities are
  // those the call used. P · V stays exact fp32. Error against fp32 scores: rounding q moves each
  // query value by at most d_q / 2, about 1e-3 of the scores' spread (docs/PERFORMANCE.md).
  // Not combined with Precision::bf16 (InvalidArgument).
  bool int8_scores = false;
  int n_threads = 0;  // 0: all hardware threads
  Backend backend = Backend::automatic;
};

// Computes attention; throws InvalidArgument naming the sizes that disagree. lse is empty (not
// wanted) or exactly [batch, n_head, n_q].
void attention(const View4& q, const View4& k, const View4& v, const MutView4& out,
               std::span<float> lse, const AttentionOptions& options = {});

// Recomputes exact softmax probabilities of chosen query rows of one (batch, head) from q, k and
// the lse saved by attention(), without materialising anything but the rows asked for.
//   probs [rows.size(), n_kv] dense fp32; masked keys get 0; a fully masked row is all zeros.
// lse is the forward's, [batch, n_head, n_q] (InvalidArgument when empty or of another size).
// Memory: O(rows.size() * n_kv). The options must be those of the attention() call.
void attention_probs(const View4& q, const View4& k, std::span<const float> lse, int64_t batch,
                     int64_t head, std::span<const int64_t> rows, float* probs,
                     const AttentionOptions& options = {});

// Gradients of attention() with respect to q, k and v (flash-style: probabilities are recomputed
// tile by tile from q, k and the forward's lse; nothing of size n_q × n_kv is stored).
//   out   [batch, n_q, n_head, head_dim_v]   the forward's output          fp32
//   lse   [batch, n_head, n_q]               the forward's lse (dense)     fp32
//   dout  [batch, n_q, n_head, head_dim_v]   gradient of the loss w.r.t. out
//   dq    [batch, n_q, n_head, head_dim]     written (overwritten), fp32
//   dk    [batch, n_kv, n_head_kv, head_dim] written; with GQA/MQA the sum over the query heads
//   dv    [batch, n_kv, n_head_kv, head_dim_v] written, likewise
// q, k and v must be fp32 (training keeps fp32 activations). The options must be those of the
// forward call; every mask kind, soft-capping and ALiBi are differentiated through (masks, ALiBi
// slopes and the additive mask are constants and get no gradient). A fully masked query row gets
// dq = 0 and contributes nothing. Precision::bf16 is not supported here (InvalidArgument).
// Backend::reference recomputes in double, materialised; the others run the tiled CPU kernel.
// Threads (options.n_threads) split the work by (batch, kv head) so that dk/dv rows have one
// writer; when there are fewer than 4 such pairs per thread the keys are split too, and dq is then
// summed from per-thread partials (scratch of n_threads × |dq| floats, at most 256 MiB).
void attention_backward(const View4& q, const View4& k, const View4& v, const View4& out,
                        std::span<const float> lse, const View4& dout, const MutView4& dq,
                        const MutView4& dk, const MutView4& dv,
                        const AttentionOptions& options = {});

// Writes n fp32 values as dtype dt at dst (dtype_bytes(dt, n) bytes; n a multiple of
// dtype_block_elems(dt)): f16 and bf16 rounded to nearest even, q8_0 quantized as ggml's reference
// quantizer does (per block d = max |x| / 127, q = round(x / d)). How a K/V cache of any dtype is
// filled.
void convert_from_f32(const float* src, int64_t n, DType dt, void* dst);

// The SIMD target the CPU backend runs on this machine: "avx512", "avx2" or "generic".
std::string_view attention_cpu_target();

// What Precision::bf16 multiplies with on this machine, for prefill with this head_dim: "amx"
// (AMX tiles, head_dim a multiple of 32, where the CPU and OS offer them), "avx512_bf16" (dot
// products; the default on AMD CPUs that have them) or "rounding" (bf16-rounded operands and fp32
// FMAs, everywhere else and for decode). QKV_BF16_AMX=0 and QKV_BF16_DOT=0/1 in the environment
// override the choice. All three give the same bf16 rounding of the operands.
std::string_view attention_bf16_path(int64_t head_dim);

// The number of floating-point operations counted for a problem, 4 * batch * n_head * n_q * n_kv *
// head_dim (QK^T and PV, one multiply-add = 2), halved for causal square attention.
double attention_flops(int64_t batch, int64_t n_head, int64_t n_q, int64_t n_kv, int64_t head_dim,
                       bool causal);

}  // namespace qkv
