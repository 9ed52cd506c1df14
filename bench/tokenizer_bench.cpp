// Tokenizer encode speed (MB/s of UTF-8 input) on ~1 MB of text, and the SentencePiece merge
// loop against the naive O(n^2) loop of llama2.c's run.c (the baseline).
//
// Text: $QKV_BENCH_TEXT if set, else Debian's /usr/share/common-licenses/* (English prose) and
// the multilingual ../shared/vocab-gguf/*.inp strings, repeated to 1 MB.
// Build (Google Benchmark), from the repository root after building build/fmt:
//   g++ -O2 -std=c++20 -Iinclude -Isrc -DQKV_SHARED_DIR='"../shared"' bench/tokenizer_bench.cpp \
//     build/fmt/src/formats/libqkv_formats.a build/fmt/src/tokenizers/libqkv_tokenizers.a \
//     build/fmt/src/core/libqkv_core.a -lbenchmark -lbenchmark_main -lpcre2-8 -licuuc -fopenmp \
//     -o build/fmt/tokenizer_bench
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "qkv/model_file.h"
#include "qkv/tokenizer.h"

#ifndef QKV_SHARED_DIR
#define QKV_SHARED_DIR "../shared"
#endif

namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string& bench_text() {
  static const std::string text = [] {
    std::string t;
    if (const char* env = std::getenv("QKV_BENCH_TEXT")) t = slurp(env);
    if (t.empty()) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator("/usr/share/common-licenses", ec)) {
        if (e.is_regular_file()) t += slurp(e.path());
      }
      for (const char* v : {"gpt-2", "llama-spm", "bert-bge"}) {
        t += slurp(fs::path(QKV_SHARED_DIR) / "vocab-gguf" /
                   (std::string("ggml-vocab-") + v + ".gguf.inp"));
      }
    }
    if (t.empty()) t = "Once upon a time, there was a little robot. ";
    std::string out;
    while (out.size() < (1u << 20)) out += t;
    out.resize(1u << 20);
    while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xc0) == 0x80) out.pop_back();
    if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xc0) out.pop_back();
    return out;
  }();
  return text;
}

const qkv::Tokenizer* vocab(const char* name) {
  static std::unordered_map<std::string, std::unique_ptr<qkv::Tokenizer>> cache;
  auto& t = cache[name];
  if (!t) {
    const fs::path p =
        fs::path(QKV_SHARED_DIR) / "vocab-gguf" / (std::string("ggml-vocab-") + name + ".gguf");
    if (!fs::exists(p)) return nullptr;
    t = std::make_unique<qkv::Tokenizer>(qkv::tokenizer_spec_from_gguf(qkv::read_gguf(p.string())));
  }
  return t.get();
}

void encode(benchmark::State& state, const char* name) {
  const qkv::Tokenizer* tok = vocab(name);
  if (tok == nullptr) {
    state.SkipWithError("../shared/vocab-gguf is absent");
    return;
  }
  const std::string& text = bench_text();
  size_t n_tokens = 0;
  for (auto _ : state) {
    auto ids = tok->encode(text);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(n_tokens);
}

// The same, with an empty word cache each time (a fresh Tokenizer, built outside the timing):
// every distinct word goes through the merge loop once per pass.
void encode_cold(benchmark::State& state, const char* name) {
  const qkv::Tokenizer* warm = vocab(name);
  if (warm == nullptr) {
    state.SkipWithError("../shared/vocab-gguf is absent");
    return;
  }
  const std::string& text = bench_text();
  for (auto _ : state) {
    state.PauseTiming();
    auto tok = std::make_unique<qkv::Tokenizer>(warm->spec());
    state.ResumeTiming();
    auto ids = tok->encode(text);
    benchmark::DoNotOptimize(ids.data());
    state.PauseTiming();
    tok.reset();
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

// llama2.c run.c encode(): merge the best-scoring adjacent pair, rescanning the whole sequence
// after every merge (O(n^2) in the text length). Same merges as the heap version.
std::vector<int32_t> runc_encode(const qkv::TokenizerSpec& s,
                                 const std::unordered_map<std::string, int32_t>& ids,
                                 const std::string& raw) {
  std::string text = "\xe2\x96\x81";
  for (char c : raw) text += c == ' ' ? std::string("\xe2\x96\x81") : std::string(1, c);
  std::vector<std::string> sym;
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    sym.push_back(text.substr(i, n));
    i += n;
  }
  while (true) {
    float best = -1e30f;
    int best_i = -1;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      auto it = ids.find(sym[i] + sym[i + 1]);
      if (it != ids.end() && s.scores[it->second] > best)
        best = s.scores[it->second], best_i = int(i);
    }
    if (best_i < 0) break;
    sym[best_i] += sym[best_i + 1];
    sym.erase(sym.begin() + best_i + 1);
  }
  std::vector<int32_t> out;
  for (const std::string& p : sym) {
    auto it = ids.find(p);
    if (it != ids.end()) {
      out.push_back(it->second);
    } else {
      for (unsigned char c : p) out.push_back(static_cast<int32_t>(c) + 3);
    }
  }
  return out;
}

void spm_merge(benchmark::State& state, bool naive) {
  const qkv::Tokenizer* tok = vocab("llama-spm");
  if (tok == nullptr) {
    state.SkipWithError("../shared/vocab-gguf is absent");
    return;
  }
  // 16 KB: the naive loop is quadratic, so the full 1 MB would take hours.
  std::string text = bench_text().substr(0, 16384);
  while (!text.empty() && (static_cast<unsigned char>(text.back()) & 0xc0) == 0x80) text.pop_back();
  if (!text.empty() && static_cast<unsigned char>(text.back()) >= 0xc0) text.pop_back();
  std::unordered_map<std::string, int32_t> ids;
  for (size_t i = 0; i < tok->spec().tokens.size(); ++i) {
    if (tok->spec().kinds[i] == qkv::TokenKind::normal)
      ids.emplace(tok->spec().tokens[i], int32_t(i));
  }
  if (naive && runc_encode(tok->spec(), ids, text) != tok->encode(text, {.add_special = false})) {
    state.SkipWithError("run.c baseline and qkv disagree");
    return;
  }
  for (auto _ : state) {
    auto out =
        naive ? runc_encode(tok->spec(), ids, text) : tok->encode(text, {.add_special = false});
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

BENCHMARK_CAPTURE(encode, gpt2_byte_bpe, "gpt-2")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode, llama_spm, "llama-spm")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode, bert_wordpiece, "bert-bge")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode_cold, gpt2_byte_bpe, "gpt-2")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(encode_cold, llama_spm, "llama-spm")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(spm_merge, heap_16k, false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(spm_merge, runc_naive_16k, true)->Unit(benchmark::kMillisecond);

}  // namespace
