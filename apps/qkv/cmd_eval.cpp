// qkv eval -m MODEL (--ids 1,2,3 | TEXT) (--logits OUT.npy | --json [--top K]) [--kv f32|f16|q8_0]
//          [--dot exact|int8] [--threads N] [--ctx N] [-t TOKENIZER] [--context-parallel]
//   The logits of every position of one forward pass from an empty cache: the parity interface
//   against other engines (llama.cpp's logits on the same ids, ../shared/fixtures/gguf-quant).
//   --ids are used as given (no BOS added); TEXT is tokenized as `generate` tokenizes a prompt.
//   --logits writes float32 [T, n_vocab] (NumPy .npy, C order); --json prints the top K tokens
//   of every position instead.
//   --context-parallel (under mpirun -np N): each rank runs its zig-zag share of the tokens;
//   rank 0 gathers the logits in position order and writes the output.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "command.h"
#include "default_model.h"
#include "qkv/file_io.h"
#include "qkv/session.h"

namespace qkv::app {
namespace cmd_eval {  // one per subcommand: the qkv target is a unity build
namespace {

struct EvalOptions {
  std::string model;
  std::string tokenizer;
  std::optional<std::string> ids;  // as given: "1,2,3"
  std::string text;
  std::string logits;
  bool json = false;
  bool no_parse_special = false;
  int top = 5;
  KvType kv = KvType::f32;
  DotProducts dot = DotProducts::exact;
  int threads = 0;
  int64_t ctx = 0;
  bool context_parallel = false;
};

// --ids "1,2,3" (spaces around an item allowed): each item a whole number in the vocabulary.
// Parsed here rather than by CLI11, which reads an empty item as 0 and drops one between commas.
std::vector<int32_t> checked_ids(const std::string& given, int64_t n_vocab) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (true) {
    const size_t comma = std::min(given.find(',', start), given.size());
    std::string_view item(given.data() + start, comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    const std::string where = "--ids: item " + std::to_string(ids.size() + 1);
    if (item.empty()) throw Error(where + " is empty (expected token ids like 1,2,3)");
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc() || end != item.data() + item.size()) {
      throw Error(where + ": expected a whole number, found \"" + std::string(item) + "\"");
    }
    if (v < 0 || v >= n_vocab) {
      throw Error("--ids: token id " + std::to_string(v) + " (item " +
                  std::to_string(ids.size() + 1) + ") is outside the vocabulary [0, " +
                  std::to_string(n_vocab) + ")");
    }
    ids.push_back(static_cast<int32_t>(v));
    if (comma == given.size()) return ids;
    start = comma + 1;
  }
}

// NumPy .npy v1.0: magic, version, a u16 header length, a Python dict literal padded with
// spaces to a multiple of 64 bytes (newline last), then the data in C order.
void write_npy_f32(const std::string& path, const float* data, int64_t rows, int64_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows) + ", " + std::to_string(cols) + "), }";
  const size_t total = (10 + header.size() + 1 + 63) / 64 * 64;
  header.append(total - 10 - header.size() - 1, ' ');
  header += '\n';
  const uint16_t len = static_cast<uint16_t>(header.size());
  std::string bytes = "\x93NUMPY\x01";
  bytes += '\0';
  bytes.append(reinterpret_cast<const char*>(&len), 2);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(data),
               static_cast<size_t>(rows * cols) * sizeof(float));
  write_output_file(path, bytes);
}

void run(const CLI::App& app, const EvalOptions& o) {
  Communicator* const comm = context_parallel_job(app, o.context_parallel);
  if (o.ids.has_value() == !o.text.empty()) {
    throw Error("give the input either as --ids 1,2,3 or as TEXT (not both)");
  }
  if (o.logits.empty() && !o.json) throw Error("give --logits OUT.npy or --json");
  if (o.top < 1) throw Error("--top: expected at least 1, found " + std::to_string(o.top));
  const Model model = load_model_or_default(o.model, {.tokenizer_path = o.tokenizer,
                                                      .require_tokenizer = !o.ids || o.json,
                                                      .progress = {},
                                                      .dot = o.dot});
  if (!model.is_decoder()) {
    throw Error(std::string(architecture_name(model.architecture())) +
                " is an encoder: it has no logits (use `qkv embed`)");
  }
  const int64_t n_vocab = model.config().n_vocab;
  const std::vector<int32_t> ids =
      !o.ids ? model.tokenizer().encode(o.text,
                                        {.add_special = true, .parse_special = !o.no_parse_special})
             : checked_ids(*o.ids, n_vocab);
  if (ids.empty()) throw Error("the input has no tokens");
  check_same_inputs(comm, "qkv eval --context-parallel", model, ids);
  Session session(
      model, {.n_ctx = o.ctx, .kv_type = o.kv, .n_threads = o.threads, .context_parallel = comm});
  const std::span<const float> logits = session.eval(ids, /*all_logits=*/true);  // [T, n_vocab]
  if (!is_output_rank(comm)) return;  // rank 0 has every row
  const auto n = static_cast<int64_t>(ids.size());
  if (!o.logits.empty()) {
    write_npy_f32(o.logits, logits.data(), n, n_vocab);
    std::fprintf(stderr, "wrote %s: float32 [%lld, %lld]\n", o.logits.c_str(),
                 static_cast<long long>(n), static_cast<long long>(n_vocab));
  }
  if (o.json) {
    const int k = static_cast<int>(std::min<int64_t>(o.top, n_vocab));
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    std::vector<int32_t> order(static_cast<size_t>(n_vocab));
    for (int64_t i = 0; i < n; ++i) {
      const float* row = logits.data() + i * n_vocab;
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
        return row[a] > row[b] || (row[a] == row[b] && a < b);
      });
      nlohmann::ordered_json top = nlohmann::ordered_json::array();
      for (int j = 0; j < k; ++j) {
        const int32_t id = order[static_cast<size_t>(j)];
        top.push_back({{"id", id},
                       {"token", model.tokenizer().decode(std::span<const int32_t>(&id, 1), false)},
                       {"logit", row[id]}});
      }
      out.push_back({{"pos", i}, {"id", ids[static_cast<size_t>(i)]}, {"top", top}});
    }
    std::cout << out.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  add_model_option(app, o->model, /*builtin_default=*/true);
  add_tokenizer_option(app, o->tokenizer);
  app.add_option("text", o->text,
                 "input text, tokenized as `qkv generate` does (BOS as the "
                 "tokenizer says)");
  app.add_option("--ids", o->ids, "input token ids, comma-separated, used as given (no BOS)");
  app.add_option("--logits", o->logits,
                 "write the logits of every position, float32 [T, n_vocab], as a .npy file");
  add_json_flag(app, o->json)->description("print the top --top tokens of every position as JSON");
  app.add_flag("--no-parse-special", o->no_parse_special,
               "tokenize special tokens written in the text (<|endoftext|>) as plain text");
  app.add_option("--top", o->top, "tokens per position for --json")->capture_default_str();
  add_enum_option(app, "--kv", o->kv, "KV cache type", kKvNames);
  add_dot_option(app, o->dot);
  add_threads_option(app, o->threads);
  app.add_option("--ctx", o->ctx, "context length in tokens (default: the model's)");
  add_context_parallel_flag(app, o->context_parallel);
  app.callback([o, &app] { run_job(app, o->context_parallel, [&] { run(app, *o); }); });
}

Registrar reg("eval", "Logits of every position of one forward pass (parity with other engines)",
              setup);

}  // namespace
}  // namespace cmd_eval
}  // namespace qkv::app
