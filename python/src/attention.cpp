// qkv.attention, attention_probs and attention_backward: the kernels of include/qkv/attention.h
// on caller-owned arrays (no copies), with the GIL released while they run. The Python wrappers
// (python/qkv/_kernels.py) allocate outputs and spell the options; this file checks the arrays
// and calls the library, which checks the sizes against each other.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "arrays.h"
#include "bindings.h"
#include "qkv/attention.h"

namespace qkv::py {

namespace {

// The options of one call and the memory they point into.
struct Options {
  AttentionOptions o;
  std::vector<int32_t> kv_lengths;
  std::vector<int32_t> q_offsets;
  std::vector<float> alibi_slopes;
  ArrayRef mask;
};

// The sizes of the per-sequence and per-head arrays, checked before the library's own check so
// the error names the Python arguments.
void check_sizes(const Options& x, const View4& q) {
  const auto want = [](const char* name, size_t have, int64_t n, const char* what) {
    if (have != 0 && static_cast<int64_t>(have) != n) {
      throw pyb::value_error(std::string(name) + " has " + std::to_string(have) +
                             " entries; expected one per " + what + " (" + std::to_string(n) + ")");
    }
  };
  want("kv_lengths", x.kv_lengths.size(), q.shape[0], "sequence of the batch");
  want("q_offsets", x.q_offsets.size(), q.shape[0], "sequence of the batch");
  want("alibi_slopes", x.alibi_slopes.size(), q.shape[2], "query head");
}

Backend parse_backend(const std::string& s) {
  if (s == "auto" || s == "automatic") return Backend::automatic;
  if (s == "cpu") return Backend::cpu;
  if (s == "reference") return Backend::reference;
  throw pyb::value_error("backend = '" + s + "'; expected 'auto', 'cpu' or 'reference'");
}

Precision parse_precision(const std::string& s) {
  if (s == "f32" || s == "float32") return Precision::f32;
  if (s == "bf16" || s == "bfloat16") return Precision::bf16;
  throw pyb::value_error("precision = '" + s + "'; expected 'f32' or 'bf16'");
}

void make_options(Options& x, bool causal, std::optional<float> scale, const pyb::object& mask,
                  const pyb::object& kv_lengths, const pyb::object& q_offsets, int64_t window_left,
                  int64_t window_right, const pyb::object& alibi_slopes,
                  std::optional<float> softcap, const std::string& precision,
                  const std::string& backend, int n_threads) {
  AttentionOptions& o = x.o;
  o.causal = causal;
  if (scale) {
    if (!(*scale > 0))
      throw pyb::value_error("scale = " + std::to_string(*scale) + "; expected > 0");
    o.scale = *scale;
  }
  if (softcap) {
    if (!(*softcap > 0)) {
      throw pyb::value_error("softcap = " + std::to_string(*softcap) + "; expected > 0 (or None)");
    }
    o.softcap = *softcap;
  }
  if (window_left < -1 || window_right < -1) {
    throw pyb::value_error("window = (" + std::to_string(window_left) + ", " +
                           std::to_string(window_right) + "); sides are >= 0, or None");
  }
  o.window_left = window_left;
  o.window_right = window_right;
  if (!kv_lengths.is_none()) {
    x.kv_lengths = int32_vector(kv_lengths, "kv_lengths");
    o.kv_lengths = x.kv_lengths;
  }
  if (!q_offsets.is_none()) {
    x.q_offsets = int32_vector(q_offsets, "q_offsets");
    o.q_offsets = x.q_offsets;
  }
  if (!alibi_slopes.is_none()) {
    x.alibi_slopes = float_vector(alibi_slopes, "alibi_slopes");
    o.alibi_slopes = x.alibi_slopes;
  }
  if (!mask.is_none()) {
    x.mask = array_ref(mask, "mask");
    const ArrayRef& m = x.mask;
    if (m.shape.size() != 2) {
      throw pyb::value_error("mask has shape " + shape_string(m.shape) +
                             "; expected [n_q, n_kv] (broadcast over batch and heads)");
    }
    if (m.elem == Elem::u8) {
      o.mask.kind = MaskKind::boolean;
    } else if (m.elem == Elem::f32) {
      o.mask.kind = MaskKind::additive;
    } else {
      throw pyb::type_error("mask has dtype " + m.dtype_name +
                            "; expected bool (True = attend) or float32 (added to the scores)");
    }
    o.mask.data = m.data;
    o.mask.n_q = m.shape[0];
    o.mask.n_kv = m.shape[1];
    o.mask.stride_q = m.stride[0];
    o.mask.stride_kv = m.stride[1];
  }
  o.precision = parse_precision(precision);
  o.backend = parse_backend(backend);
  if (n_threads < 0) {
    throw pyb::value_error("n_threads = " + std::to_string(n_threads) + "; expected >= 0");
  }
  o.n_threads = n_threads;
}

// The lse array: float32, dense, exactly [batch, n_head, n_q].
float* lse_data(const ArrayRef& a, const View4& q, const char* name, bool writable) {
  const std::vector<int64_t> want{q.shape[0], q.shape[2], q.shape[1]};
  if (a.elem != Elem::f32) {
    throw pyb::type_error(std::string(name) + " has dtype " + a.dtype_name + "; expected float32");
  }
  if (a.shape != want) {
    throw pyb::value_error(std::string(name) + " has shape " + shape_string(a.shape) +
                           "; expected [batch, heads, n_q] = " + shape_string(want));
  }
  int64_t expect = 1;
  for (int i = 2; i >= 0; --i) {
    if (a.shape[i] > 1 && a.stride[i] != expect) {
      throw pyb::value_error(std::string(name) + " must be C-contiguous (strides " +
                             shape_string(a.stride) + ")");
    }
    expect *= a.shape[i];
  }
  if (writable && !a.writable) throw pyb::value_error(std::string(name) + " is read-only");
  return static_cast<float*>(a.data);
}

int64_t count(const View4& q) {
  return q.shape[0] * q.shape[2] * q.shape[1];
}

// The lse output as the library takes it: empty, or one value per (batch, head, query).
std::span<float> lse_span(float* data, const View4& q) {
  return data ? std::span<float>(data, static_cast<size_t>(count(q))) : std::span<float>();
}

}  // namespace

void bind_attention(pyb::module_& m) {
  m.def(
      "_attention",
      [](pyb::object q, pyb::object k, pyb::object v, pyb::object out, pyb::object lse, bool causal,
         std::optional<float> scale, pyb::object mask, pyb::object kv_lengths,
         pyb::object q_offsets, int64_t window_left, int64_t window_right, pyb::object alibi_slopes,
         std::optional<float> softcap, const std::string& precision, const std::string& backend,
         int n_threads) {
        const ArrayRef qa = array_ref(q, "q"), ka = array_ref(k, "k"), va = array_ref(v, "v");
        const ArrayRef oa = array_ref(out, "out");
        const View4 qv = view4(qa, "q", false), kv = view4(ka, "k", true),
                    vv = view4(va, "v", true);
        const MutView4 ov = mut_view4(oa, "out");
        Options x;
        make_options(x, causal, scale, mask, kv_lengths, q_offsets, window_left, window_right,
                     alibi_slopes, softcap, precision, backend, n_threads);
        std::optional<ArrayRef> la;
        std::span<float> l;
        if (!lse.is_none()) {
          la = array_ref(lse, "lse");
          l = lse_span(lse_data(*la, qv, "lse", true), qv);
        }
        check_sizes(x, qv);
        pyb::gil_scoped_release release;
        attention(qv, kv, vv, ov, l, x.o);
      },
      pyb::arg("q"), pyb::arg("k"), pyb::arg("v"), pyb::arg("out"), pyb::arg("lse"),
      pyb::arg("causal"), pyb::arg("scale"), pyb::arg("mask"), pyb::arg("kv_lengths"),
      pyb::arg("q_offsets"), pyb::arg("window_left"), pyb::arg("window_right"),
      pyb::arg("alibi_slopes"), pyb::arg("softcap"), pyb::arg("precision"), pyb::arg("backend"),
      pyb::arg("n_threads"));

  m.def(
      "_attention_probs",
      [](pyb::object q, pyb::object k, pyb::object lse, int64_t batch, int64_t head,
         std::vector<int64_t> rows, pyb::object probs, bool causal, std::optional<float> scale,
         pyb::object mask, pyb::object kv_lengths, pyb::object q_offsets, int64_t window_left,
         int64_t window_right, pyb::object alibi_slopes, std::optional<float> softcap,
         const std::string& precision, const std::string& backend, int n_threads) {
        const ArrayRef qa = array_ref(q, "q"), ka = array_ref(k, "k");
        const View4 qv = view4(qa, "q", false), kv = view4(ka, "k", true);
        const ArrayRef la = array_ref(lse, "lse");
        const std::span<float> l = lse_span(lse_data(la, qv, "lse", false), qv);
        const ArrayRef pa = array_ref(probs, "probs");
        const std::vector<int64_t> want{static_cast<int64_t>(rows.size()), kv.shape[1]};
        if (pa.elem != Elem::f32 || pa.shape != want || !pa.writable) {
          throw pyb::value_error("probs must be a writable float32 array of shape " +
                                 shape_string(want));
        }
        if (rows.size() > 1 && (pa.stride[1] != 1 && want[1] > 1)) {
          throw pyb::value_error("probs must be C-contiguous");
        }
        if (rows.size() > 1 && pa.stride[0] != want[1]) {
          throw pyb::value_error("probs must be C-contiguous");
        }
        Options x;
        make_options(x, causal, scale, mask, kv_lengths, q_offsets, window_left, window_right,
                     alibi_slopes, softcap, precision, backend, n_threads);
        check_sizes(x, qv);
        pyb::gil_scoped_release release;
        attention_probs(qv, kv, l, batch, head, rows, static_cast<float*>(pa.data), x.o);
      },
      pyb::arg("q"), pyb::arg("k"), pyb::arg("lse"), pyb::arg("batch"), pyb::arg("head"),
      pyb::arg("rows"), pyb::arg("probs"), pyb::arg("causal"), pyb::arg("scale"), pyb::arg("mask"),
      pyb::arg("kv_lengths"), pyb::arg("q_offsets"), pyb::arg("window_left"),
      pyb::arg("window_right"), pyb::arg("alibi_slopes"), pyb::arg("softcap"),
      pyb::arg("precision"), pyb::arg("backend"), pyb::arg("n_threads"));

  m.def(
      "_attention_backward",
      [](pyb::object q, pyb::object k, pyb::object v, pyb::object out, pyb::object lse,
         pyb::object dout, pyb::object dq, pyb::object dk, pyb::object dv, bool causal,
         std::optional<float> scale, pyb::object mask, pyb::object kv_lengths,
         pyb::object q_offsets, int64_t window_left, int64_t window_right, pyb::object alibi_slopes,
         std::optional<float> softcap, const std::string& backend, int n_threads) {
        const ArrayRef qa = array_ref(q, "q"), ka = array_ref(k, "k"), va = array_ref(v, "v");
        const ArrayRef oa = array_ref(out, "out"), da = array_ref(dout, "dout");
        const ArrayRef la = array_ref(lse, "lse");
        const ArrayRef dqa = array_ref(dq, "dq"), dka = array_ref(dk, "dk"),
                       dva = array_ref(dv, "dv");
        const View4 qv = view4(qa, "q", false), kv = view4(ka, "k", false),
                    vv = view4(va, "v", false), ov = view4(oa, "out", false),
                    dov = view4(da, "dout", false);
        const MutView4 dqv = mut_view4(dqa, "dq"), dkv = mut_view4(dka, "dk"),
                       dvv = mut_view4(dva, "dv");
        const std::span<float> l = lse_span(lse_data(la, qv, "lse", false), qv);
        Options x;
        make_options(x, causal, scale, mask, kv_lengths, q_offsets, window_left, window_right,
                     alibi_slopes, softcap, "f32", backend, n_threads);
        check_sizes(x, qv);
        pyb::gil_scoped_release release;
        attention_backward(qv, kv, vv, ov, l, dov, dqv, dkv, dvv, x.o);
      },
      pyb::arg("q"), pyb::arg("k"), pyb::arg("v"), pyb::arg("out"), pyb::arg("lse"),
      pyb::arg("dout"), pyb::arg("dq"), pyb::arg("dk"), pyb::arg("dv"), pyb::arg("causal"),
      pyb::arg("scale"), pyb::arg("mask"), pyb::arg("kv_lengths"), pyb::arg("q_offsets"),
      pyb::arg("window_left"), pyb::arg("window_right"), pyb::arg("alibi_slopes"),
      pyb::arg("softcap"), pyb::arg("backend"), pyb::arg("n_threads"));

  m.def(
      "attention_cpu_target", [] { return std::string(attention_cpu_target()); },
      "The SIMD target of the CPU attention kernel on this machine.");
}

}  // namespace qkv::py
