// qkv.Model: loading, tokenization, logits, generation (whole or streamed), chat prompts and
// embeddings over the public runtime API (include/qkv/session.h). Every call that runs the model
// releases the GIL. The Python class in python/qkv/_model.py adds the defaults and chat().
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bindings.h"
#include "chat_source.h"
#include "qkv/chat.h"
#include "qkv/error.h"
#include "qkv/model.h"
#include "qkv/session.h"

namespace qkv::py {

namespace pyb = pybind11;

namespace {

// Text from the library (token bytes may be invalid UTF-8 at a cut): invalid bytes become U+FFFD.
pyb::str utf8(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw pyb::error_already_set();
  return pyb::reinterpret_steal<pyb::str>(o);
}

struct GenerateArgs {
  std::vector<int32_t> prompt_ids;
  std::string prompt;
  bool has_ids = false;
  GenerateOptions g;
  SessionOptions s;
};

GenerateArgs generate_args(const pyb::object& prompt, int64_t max_new_tokens, float temperature,
                           int top_k, float top_p, float min_p, float repeat_penalty,
                           int repeat_last_n, uint64_t seed, std::vector<std::string> stop,
                           bool stop_at_eos, bool add_special, bool parse_special, int64_t n_ctx,
                           const std::string& kv_type, int n_threads) {
  GenerateArgs a;
  if (pyb::isinstance<pyb::str>(prompt)) {
    a.prompt = prompt.cast<std::string>();
  } else {
    a.prompt_ids = prompt.cast<std::vector<int32_t>>();
    a.has_ids = true;
  }
  if (max_new_tokens < 0) {
    throw pyb::value_error("max_new_tokens = " + std::to_string(max_new_tokens) +
                           "; expected >= 0");
  }
  a.g.max_new_tokens = max_new_tokens;
  a.g.sampling = {.temperature = temperature,
                  .top_k = top_k,
                  .top_p = top_p,
                  .min_p = min_p,
                  .repeat_penalty = repeat_penalty,
                  .repeat_last_n = repeat_last_n,
                  .seed = seed};
  Sampler check(a.g.sampling);  // bad sampling parameters raise before anything runs
  a.g.stop = std::move(stop);
  a.g.stop_at_eos = stop_at_eos;
  a.g.add_special = add_special;
  a.g.parse_special = parse_special;
  if (kv_type != "f32" && kv_type != "f16" && kv_type != "q8_0") {
    throw pyb::value_error("kv_type = '" + kv_type + "'; expected 'f32', 'f16' or 'q8_0'");
  }
  if (n_ctx < 0) throw pyb::value_error("n_ctx = " + std::to_string(n_ctx) + "; expected >= 0");
  if (n_threads < 0) {
    throw pyb::value_error("n_threads = " + std::to_string(n_threads) + "; expected >= 0");
  }
  a.s = {.n_ctx = n_ctx,
         .kv_type = kv_type == "f16"    ? KvType::f16
                    : kv_type == "q8_0" ? KvType::q8_0
                                        : KvType::f32,
         .n_threads = n_threads};
  return a;
}

void require_decoder(const Model& m, const char* what) {
  if (!m.is_decoder()) {
    throw Error(std::string(architecture_name(m.architecture())) + " is an encoder and cannot " +
                what + "; use embed()");
  }
}

GenerateResult run_generate(const Model& model, const GenerateArgs& a) {
  require_decoder(model, "generate text");
  Session session(model, a.s);
  if (a.has_ids) return session.generate(std::span<const int32_t>(a.prompt_ids), a.g);
  return session.generate(std::string_view(a.prompt), a.g);
}

// stream(): generate() on a thread of its own; the text pieces its on_text callback receives are
// queued for the Python iterator, which waits for them with the GIL released. Closing or dropping
// the iterator stops the generation at the next piece.
class TextStream {
 public:
  TextStream(Model model, GenerateArgs args) {
    GenerateArgs a = std::move(args);
    a.g.on_text = [this](std::string_view text) {
      std::lock_guard<std::mutex> lock(mu_);
      pieces_.emplace_back(text);
      cv_.notify_one();
      return !cancel_;
    };
    worker_ = std::thread([this, model = std::move(model), a = std::move(a)] {
      try {
        result_ = run_generate(model, a);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        error_ = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      cv_.notify_one();
    });
  }
  ~TextStream() { close(); }

  pyb::str next() {
    std::string piece;
    {
      pyb::gil_scoped_release release;
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return !pieces_.empty() || done_; });
      if (!pieces_.empty()) {
        piece = std::move(pieces_.front());
        pieces_.pop_front();
      } else if (error_) {
        std::exception_ptr e = error_;
        error_ = nullptr;
        lock.unlock();
        std::rethrow_exception(e);
      } else {
        throw pyb::stop_iteration();
      }
    }
    return utf8(piece);
  }

  void close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancel_ = true;
    }
    if (worker_.joinable()) {
      // The worker never takes the GIL, so joining while holding it cannot deadlock; releasing
      // it lets other Python threads run meanwhile.
      if (PyGILState_Check()) {
        pyb::gil_scoped_release release;
        worker_.join();
      } else {
        worker_.join();
      }
    }
  }

  // The finished generation's result (after the iterator is exhausted).
  const GenerateResult& result() const { return result_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> pieces_;
  bool done_ = false;
  bool cancel_ = false;
  std::exception_ptr error_;
  GenerateResult result_;
  std::thread worker_;
};

Model load_model(const std::string& path, const std::string& tokenizer, const std::string& dot) {
  if (dot != "exact" && dot != "int8") {
    throw pyb::value_error("dot must be \"exact\" or \"int8\", not \"" + dot + "\"");
  }
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    PyErr_SetString(PyExc_FileNotFoundError, ("no model file or folder " + path).c_str());
    throw pyb::error_already_set();
  }
  if (!tokenizer.empty() && !std::filesystem::exists(tokenizer, ec)) {
    PyErr_SetString(PyExc_FileNotFoundError, ("no tokenizer file " + tokenizer).c_str());
    throw pyb::error_already_set();
  }
  pyb::gil_scoped_release release;
  return Model::load(path, {.tokenizer_path = tokenizer,
                            .require_tokenizer = false,
                            .progress = {},
                            .dot = dot == "int8" ? DotProducts::int8 : DotProducts::exact});
}

// messages: a JSON array of {"role", "content", ...} (python/qkv/_model.py serialises them).
std::string chat_prompt(const Model& model, const std::string& messages_json,
                        bool add_generation_prompt, const std::string& variables_json) {
  const app::ModelChatTemplate t = app::chat_template_of(model.file());
  ChatTemplateInputs in;
  in.messages_json = messages_json;
  in.variables_json = variables_json;
  in.add_generation_prompt = add_generation_prompt;
  in.bos_token = t.bos;
  in.eos_token = t.eos;
  return ChatTemplate(t.source).render(in);
}

}  // namespace

void bind_model(pyb::module_& m) {
  pyb::class_<TextStream>(m, "TextStream", "An iterator over generated text pieces.")
      .def("__iter__", [](pyb::object self) { return self; })
      .def("__next__", &TextStream::next)
      .def("close", &TextStream::close, "Stops the generation (at its next piece).")
      .def_property_readonly("stop_reason", [](const TextStream& s) {
        return std::string(stop_reason_name(s.result().stop));
      });

  pyb::class_<Model>(m, "_Model")
      .def(pyb::init(&load_model), pyb::arg("path"), pyb::arg("tokenizer") = "",
           pyb::arg("dot") = "exact")
      .def_property_readonly(
          "architecture",
          [](const Model& self) { return std::string(architecture_name(self.architecture())); })
      .def_property_readonly("is_decoder", &Model::is_decoder)
      .def_property_readonly("n_params", &Model::n_params)
      .def_property_readonly("n_vocab", [](const Model& self) { return self.config().n_vocab; })
      .def_property_readonly("n_ctx", [](const Model& self) { return self.config().n_ctx; })
      .def_property_readonly("n_embd", [](const Model& self) { return self.config().n_embd; })
      .def_property_readonly("n_layer", [](const Model& self) { return self.config().n_layer; })
      .def_property_readonly("n_head", [](const Model& self) { return self.config().n_head; })
      .def_property_readonly("n_head_kv", [](const Model& self) { return self.config().n_head_kv; })
      .def_property_readonly("path", [](const Model& self) { return self.file().path; })
      .def("describe", &Model::describe)
      .def(
          "tokenize",
          [](const Model& self, const std::string& text, bool add_special, bool parse_special) {
            return self.tokenizer().encode(
                text, {.add_special = add_special, .parse_special = parse_special});
          },
          pyb::arg("text"), pyb::kw_only(), pyb::arg("add_special") = true,
          pyb::arg("parse_special") = true)
      .def(
          "detokenize",
          [](const Model& self, const std::vector<int32_t>& ids, bool skip_special) {
            const Tokenizer& tok = self.tokenizer();
            for (size_t i = 0; i < ids.size(); ++i) {
              if (ids[i] < 0 || ids[i] >= tok.n_vocab()) {
                throw pyb::value_error(
                    "ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                    " is outside the vocabulary (" + std::to_string(tok.n_vocab()) + " tokens)");
              }
            }
            return utf8(tok.decode(ids, skip_special));
          },
          pyb::arg("ids"), pyb::kw_only(), pyb::arg("skip_special") = true)
      .def(
          "token",
          [](const Model& self, int32_t id) { return utf8(self.tokenizer().token_bytes(id)); },
          pyb::arg("id"), "The text of one token (invalid UTF-8 replaced).")
      .def(
          "eval",
          [](const Model& self, const std::vector<int32_t>& ids, int n_threads) {
            if (ids.empty()) throw pyb::value_error("ids is empty; eval needs at least one token");
            const int64_t n = static_cast<int64_t>(ids.size());
            std::vector<float> rows;
            int64_t width = 0;
            {
              pyb::gil_scoped_release release;
              Session session(self, {.n_ctx = self.is_decoder() ? n : 0, .n_threads = n_threads});
              std::span<const float> out =
                  self.is_decoder() ? session.eval(ids, /*all_logits=*/true) : session.encode(ids);
              rows.assign(out.begin(), out.end());
              width = static_cast<int64_t>(rows.size()) / n;
            }
            pyb::array_t<float> a({n, width});
            std::copy(rows.begin(), rows.end(), a.mutable_data());
            return a;
          },
          pyb::arg("ids"), pyb::kw_only(), pyb::arg("n_threads") = 0,
          "Logits [n, n_vocab] of every position (decoders), or the last hidden states "
          "[n, n_embd] (encoders), of one sequence run from an empty cache.")
      .def("_generate",
           [](const Model& self, const pyb::object& prompt, int64_t max_new_tokens,
              float temperature, int top_k, float top_p, float min_p, float repeat_penalty,
              int repeat_last_n, uint64_t seed, std::vector<std::string> stop, bool stop_at_eos,
              bool add_special, bool parse_special, int64_t n_ctx, const std::string& kv_type,
              int n_threads) {
             const GenerateArgs a =
                 generate_args(prompt, max_new_tokens, temperature, top_k, top_p, min_p,
                               repeat_penalty, repeat_last_n, seed, std::move(stop), stop_at_eos,
                               add_special, parse_special, n_ctx, kv_type, n_threads);
             GenerateResult r;
             {
               pyb::gil_scoped_release release;
               r = run_generate(self, a);
             }
             pyb::dict d;
             d["text"] = utf8(r.text);
             d["ids"] = r.ids;
             d["prompt_ids"] = r.prompt_ids;
             d["stop_reason"] = std::string(stop_reason_name(r.stop));
             d["prefill_seconds"] = r.prefill_seconds;
             d["decode_seconds"] = r.decode_seconds;
             return d;
           })
      .def("_stream",
           [](const Model& self, const pyb::object& prompt, int64_t max_new_tokens,
              float temperature, int top_k, float top_p, float min_p, float repeat_penalty,
              int repeat_last_n, uint64_t seed, std::vector<std::string> stop, bool stop_at_eos,
              bool add_special, bool parse_special, int64_t n_ctx, const std::string& kv_type,
              int n_threads) {
             GenerateArgs a =
                 generate_args(prompt, max_new_tokens, temperature, top_k, top_p, min_p,
                               repeat_penalty, repeat_last_n, seed, std::move(stop), stop_at_eos,
                               add_special, parse_special, n_ctx, kv_type, n_threads);
             require_decoder(self, "generate text");
             return std::make_unique<TextStream>(self, std::move(a));
           })
      .def("_chat_prompt", &chat_prompt, pyb::arg("messages_json"),
           pyb::arg("add_generation_prompt") = true, pyb::arg("variables_json") = "")
      .def("_embed", [](const Model& self, const std::vector<std::string>& texts,
                        const std::string& pooling, bool normalize, bool parse_special,
                        int n_threads) {
        if (self.is_decoder()) {
          throw Error(std::string(architecture_name(self.architecture())) +
                      " is a decoder; embed() needs an encoder model (BERT)");
        }
        EmbedOptions o{
            .normalize = normalize, .parse_special = parse_special, .n_threads = n_threads};
        if (pooling == "cls") {
          o.pooling = Pooling::cls;
        } else if (pooling == "mean") {
          o.pooling = Pooling::mean;
        } else if (pooling == "pooler") {
          o.pooling = Pooling::pooler;
        } else {
          throw pyb::value_error("pooling = '" + pooling + "'; expected 'cls', 'mean' or 'pooler'");
        }
        std::vector<std::vector<float>> rows;
        {
          pyb::gil_scoped_release release;
          for (const std::string& t : texts) rows.push_back(embed(self, t, o));
        }
        const int64_t n = static_cast<int64_t>(rows.size());
        const int64_t d = self.config().n_embd;
        pyb::array_t<float> a({n, d});
        for (int64_t i = 0; i < n; ++i) {
          std::copy(rows[i].begin(), rows[i].end(), a.mutable_data() + i * d);
        }
        return a;
      });
}

}  // namespace qkv::py
