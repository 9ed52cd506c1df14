// Session::generate: prefill the prompt in one batch, then decode one token at a time, sampling
// each next token, until EOS, a stop string, max_new_tokens, the end of the context or the
// callback says stop. Text is streamed as complete UTF-8 characters.
#include <algorithm>
#include <chrono>
#include <optional>

#include "core/error.h"
#include "qkv/session.h"
#include "runtime/session_impl.h"
#include "runtime/text_stream.h"

namespace qkv {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

double GenerateResult::prefill_tokens_per_second() const {
  return prefill_seconds > 0 ? static_cast<double>(prompt_ids.size()) / prefill_seconds : 0;
}

double GenerateResult::decode_tokens_per_second() const {
  return decode_seconds > 0 ? static_cast<double>(ids.size()) / decode_seconds : 0;
}

std::string_view stop_reason_name(GenerateResult::Stop s) {
  switch (s) {
    case GenerateResult::Stop::length:
      return "length";
    case GenerateResult::Stop::eos:
      return "eos";
    case GenerateResult::Stop::stop_string:
      return "stop_string";
    case GenerateResult::Stop::context_full:
      return "context_full";
    case GenerateResult::Stop::callback:
      return "callback";
  }
  return "?";
}

GenerateResult Session::generate(std::string_view prompt, const GenerateOptions& options) {
  const Tokenizer& tok = impl_->model.tokenizer();  // throws when the model has none
  const std::vector<int32_t> ids = tok.encode(
      prompt, {.add_special = options.add_special, .parse_special = options.parse_special});
  return generate(std::span<const int32_t>(ids), options);
}

GenerateResult Session::generate(std::span<const int32_t> prompt_ids,
                                 const GenerateOptions& options) {
  Impl& s = *impl_;
  if (!s.cache) {
    core::throw_invalid("Session::generate: ", architecture_name(s.model.architecture()),
                        " is an encoder and cannot generate text");
  }
  if (options.max_new_tokens < 0) {
    core::throw_invalid("GenerateOptions::max_new_tokens = ", options.max_new_tokens,
                        "; expected >= 0");
  }
  if (prompt_ids.empty()) {
    core::throw_invalid(
        "Session::generate: the prompt has no tokens (this tokenizer adds no "
        "BOS); give a non-empty prompt");
  }
  Sampler sampler(options.sampling);  // validates the sampling parameters
  runtime::TextStream stream(options.stop);
  const Tokenizer* tok = s.model.has_tokenizer() ? &s.model.tokenizer() : nullptr;
  if (tok == nullptr && (!options.stop.empty() || options.on_text)) {
    core::throw_invalid(
        "the model has no tokenizer, so it cannot produce text or match stop strings; "
        "give a tokenizer file");
  }
  // EOS and the tokens that end a chat turn (<|im_end|>, <|eot_id|>, <end_of_turn>, ...; BOS for
  // llama2.c, whose stories end when BOS is sampled): Model::end_of_generation_ids.
  const std::vector<int32_t> end_ids = s.model.end_of_generation_ids();

  GenerateResult r;
  r.prompt_ids.assign(prompt_ids.begin(), prompt_ids.end());
  std::vector<int32_t> history(prompt_ids.begin(), prompt_ids.end());  // penalty window source

  // The decoder sees the prompt first, so the first generated piece gets its leading space
  // exactly as it would in decode(prompt + generated).
  std::optional<StreamDecoder> decoder;
  if (tok) {
    decoder.emplace(*tok);
    for (int32_t id : prompt_ids) decoder->push(id);
  }

  const auto t_prefill = Clock::now();
  std::span<const float> logits = eval(prompt_ids);
  r.prefill_seconds = seconds_since(t_prefill);

  const auto t_decode = Clock::now();
  bool callback_stopped = false;
  const auto emit = [&](std::string_view text) {
    if (!text.empty() && options.on_text && !options.on_text(text)) callback_stopped = true;
  };
  r.stop = GenerateResult::Stop::length;
  while (static_cast<int64_t>(r.ids.size()) < options.max_new_tokens) {
    const int32_t next = sampler.sample(logits, history);
    if (options.stop_at_eos && std::binary_search(end_ids.begin(), end_ids.end(), next)) {
      r.stop = GenerateResult::Stop::eos;
      break;
    }
    r.ids.push_back(next);
    history.push_back(next);
    if (decoder && stream.append(decoder->push(next))) {
      emit(stream.take_ready());
      r.stop = GenerateResult::Stop::stop_string;
      break;
    }
    emit(stream.take_ready());
    if (callback_stopped) {
      r.stop = GenerateResult::Stop::callback;
      break;
    }
    if (static_cast<int64_t>(r.ids.size()) == options.max_new_tokens) break;
    if (n_past() == s.n_ctx) {
      r.stop = GenerateResult::Stop::context_full;
      break;
    }
    const int32_t one[1] = {next};
    logits = eval(one);
  }
  // The tail held back for a stop string that never came, and an unfinished character.
  if (decoder && r.stop != GenerateResult::Stop::stop_string &&
      r.stop != GenerateResult::Stop::callback) {
    stream.append(decoder->flush());
    if (r.stop != GenerateResult::Stop::stop_string && stream.stopped()) {
      r.stop = GenerateResult::Stop::stop_string;
    }
    emit(stream.take_all());
  }
  r.text = stream.text();
  r.decode_seconds = seconds_since(t_decode);
  return r;
}

}  // namespace qkv
