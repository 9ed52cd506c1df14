// Model.explain(): exact attention maps of a run (include/qkv/explain.h) as NumPy arrays, the
// analyses of explain.h over them, and the HTML / PNG exports. python/qkv/_explain.py wraps the
// result (to_transformers() and the documented methods).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "bindings.h"
#include "qkv/error.h"
#include "qkv/explain.h"

namespace qkv::py {

namespace pyb = pybind11;

namespace {

struct PyExplanation {
  std::shared_ptr<const Explanation> e;

  int64_t n() const { return static_cast<int64_t>(e->ids.size()); }
  size_t n_layers() const { return e->capture.layers().size(); }
  size_t n_heads() const { return e->capture.heads().size(); }

  // As qkv explain --npy writes it: rows the capture's budget dropped are NaN, not zeros.
  std::vector<float> map(size_t li, size_t hi) const {
    const AttentionCapture& c = e->capture;
    std::vector<float> m = c.map(li, hi, n());
    if (c.dropped_rows() == 0) return m;
    for (int64_t pos = 0; pos < n(); ++pos) {
      if (!c.has_row(li, hi, pos)) {
        std::fill(m.begin() + pos * n(), m.begin() + (pos + 1) * n(),
                  std::numeric_limits<float>::quiet_NaN());
      }
    }
    return m;
  }

  // [layers, heads, T, T]
  pyb::array_t<float> attentions() const {
    const int64_t t = n();
    pyb::array_t<float> a(
        {static_cast<int64_t>(n_layers()), static_cast<int64_t>(n_heads()), t, t});
    float* dst = a.mutable_data();
    for (size_t l = 0; l < n_layers(); ++l) {
      for (size_t h = 0; h < n_heads(); ++h) {
        const std::vector<float> m = map(l, h);
        std::copy(m.begin(), m.end(), dst);
        dst += t * t;
      }
    }
    return a;
  }

  // The selected index of model layer `layer` / head `head`; ValueError when not captured.
  size_t index(const std::vector<int>& chosen, int value, const char* what) const {
    for (size_t i = 0; i < chosen.size(); ++i) {
      if (chosen[i] == value) return i;
    }
    std::string list;
    for (int c : chosen) list += (list.empty() ? "" : ", ") + std::to_string(c);
    throw pyb::value_error(std::string(what) + " " + std::to_string(value) +
                           " was not captured (captured: " + list + ")");
  }
};

}  // namespace

void bind_explain(pyb::module_& m) {
  pyb::class_<PyExplanation>(m, "_Explanation")
      .def_property_readonly("ids", [](const PyExplanation& x) { return x.e->ids; })
      .def_property_readonly("tokens", [](const PyExplanation& x) { return x.e->tokens; })
      .def_property_readonly("word_ids", [](const PyExplanation& x) { return x.e->word_ids; })
      .def_property_readonly("n_prompt", [](const PyExplanation& x) { return x.e->n_prompt; })
      .def_property_readonly("layers", [](const PyExplanation& x) { return x.e->capture.layers(); })
      .def_property_readonly("heads", [](const PyExplanation& x) { return x.e->capture.heads(); })
      .def_property_readonly("model", [](const PyExplanation& x) { return x.e->model; })
      .def_property_readonly("memory_note",
                             [](const PyExplanation& x) { return x.e->capture.memory_note(); })
      .def("_attentions", &PyExplanation::attentions)
      .def("_entropy",
           [](const PyExplanation& x) {
             const int64_t t = x.n();
             pyb::array_t<double> a(
                 {static_cast<int64_t>(x.n_layers()), static_cast<int64_t>(x.n_heads()), t});
             double* dst = a.mutable_data();
             for (size_t l = 0; l < x.n_layers(); ++l) {
               for (size_t h = 0; h < x.n_heads(); ++h) {
                 const std::vector<double> r = row_entropy(x.e->capture.map(l, h, t), t);
                 dst = std::copy(r.begin(), r.end(), dst);
               }
             }
             return a;
           })
      .def("_rollout",
           [](const PyExplanation& x) {
             const int64_t t = x.n();
             std::vector<float> means;
             for (size_t l = 0; l < x.n_layers(); ++l) {
               std::vector<float> all;
               for (size_t h = 0; h < x.n_heads(); ++h) {
                 const std::vector<float> m = x.e->capture.map(l, h, t);
                 all.insert(all.end(), m.begin(), m.end());
               }
               const std::vector<float> mean = mean_map(all, static_cast<int64_t>(x.n_heads()), t);
               means.insert(means.end(), mean.begin(), mean.end());
             }
             const std::vector<float> r =
                 attention_rollout(means, static_cast<int64_t>(x.n_layers()), t);
             pyb::array_t<float> a({t, t});
             std::copy(r.begin(), r.end(), a.mutable_data());
             return a;
           })
      .def("_look_scores",
           [](const PyExplanation& x) {
             const int64_t t = x.n();
             const std::vector<int64_t> shape{static_cast<int64_t>(x.n_layers()),
                                              static_cast<int64_t>(x.n_heads())};
             const char* names[] = {"previous",  "first",   "self", "same_word",
                                    "induction", "entropy", "rows"};
             std::vector<pyb::array_t<double>> arrays;
             for (size_t i = 0; i < std::size(names); ++i) arrays.emplace_back(shape);
             size_t k = 0;
             for (size_t l = 0; l < x.n_layers(); ++l) {
               for (size_t h = 0; h < x.n_heads(); ++h, ++k) {
                 const LookScores s =
                     look_scores(x.e->capture.map(l, h, t), t, x.e->ids, x.e->word_ids);
                 const double v[] = {s.previous,
                                     s.first,
                                     s.self,
                                     s.same_word,
                                     s.induction,
                                     s.entropy,
                                     static_cast<double>(s.rows)};
                 for (size_t i = 0; i < std::size(names); ++i) arrays[i].mutable_data()[k] = v[i];
               }
             }
             pyb::dict d;
             for (size_t i = 0; i < std::size(names); ++i) d[names[i]] = arrays[i];
             return d;
           })
      .def("_html", [](const PyExplanation& x) { return render_html(*x.e); })
      .def("_write_npy",
           [](const PyExplanation& x, const std::string& path) { write_npy(path, *x.e); })
      .def("_png",
           [](const PyExplanation& x, const std::string& path, int layer, int head, int cell) {
             const size_t li = x.index(x.e->capture.layers(), layer, "layer");
             const size_t hi = x.index(x.e->capture.heads(), head, "head");
             const int64_t t = x.n();
             if (cell <= 0) cell = t > 256 ? 1 : t > 64 ? 4 : 16;
             write_png(path, x.e->capture.map(li, hi, t), t, cell);
           });

  m.def(
      "_explain",
      [](const Model& model, const std::string& text, std::vector<int> layers,
         std::vector<int> heads, int64_t max_new_tokens, bool add_special, bool parse_special,
         int64_t max_floats, int n_threads) {
        if (max_new_tokens < 0) {
          throw pyb::value_error("max_new_tokens = " + std::to_string(max_new_tokens) +
                                 "; expected >= 0");
        }
        ExplainOptions o;
        o.capture.layers = std::move(layers);
        o.capture.heads = std::move(heads);
        if (max_floats > 0) o.capture.max_floats = max_floats;
        o.max_new_tokens = max_new_tokens;
        o.add_special = add_special;
        o.parse_special = parse_special;
        o.n_threads = n_threads;
        std::shared_ptr<Explanation> e;
        {
          pyb::gil_scoped_release release;
          e = std::make_shared<Explanation>(explain(model, text, o));
        }
        return PyExplanation{std::move(e)};
      },
      pyb::arg("model"), pyb::arg("text"), pyb::arg("layers"), pyb::arg("heads"),
      pyb::arg("max_new_tokens"), pyb::arg("add_special"), pyb::arg("parse_special"),
      pyb::arg("max_floats"), pyb::arg("n_threads"));
}

}  // namespace qkv::py
