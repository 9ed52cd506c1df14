// The scheduler's thread: admission, prompt chunks, decode steps, sampling and text release
// (scheduler.h says why the results do not depend on the load).
#include "serve/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "core/error.h"
#include "qkv/attention.h"
#include "qkv/observer.h"
#include "runtime/text_stream.h"

namespace qkv::serve {

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// log-softmax of one row, in double for the normaliser (the logprobs a client sees).
void log_softmax(std::span<const float> logits, std::vector<float>& out) {
  float max = -INFINITY;
  for (float l : logits) max = std::max(max, l);
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max);
  const float log_z = max + static_cast<float>(std::log(sum));
  out.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = logits[i] - log_z;
}

// ev's logprob of `id` and the n most likely tokens (ties: lower id first) of a log-softmax row.
void fill_logprobs(std::span<const float> lp, int32_t id, int n, TokenEvent& ev) {
  ev.logprob = lp[static_cast<size_t>(id)];
  std::vector<int32_t> order(lp.size());
  std::iota(order.begin(), order.end(), 0);
  const size_t k = std::min(order.size(), static_cast<size_t>(n));
  const auto at = [&](int32_t i) { return lp[static_cast<size_t>(i)]; };
  std::partial_sort(
      order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
      [&](int32_t a, int32_t b) { return at(a) > at(b) || (at(a) == at(b) && a < b); });
  for (size_t i = 0; i < k; ++i) ev.top.push_back({order[i], at(order[i])});
}

}  // namespace

std::vector<TokenEvent> Job::take(int timeout_ms, bool& is_done) {
  std::unique_lock lock(mu);
  cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return done || !events.empty(); });
  std::vector<TokenEvent> out(std::make_move_iterator(events.begin()),
                              std::make_move_iterator(events.end()));
  events.clear();
  is_done = done;
  return out;
}

// Watches the attention of the rows that produce a token, for the layers and heads a job asked
// for, while `active` is set.
class AttentionWatch : public Observer {
 public:
  const AttentionRequest* request = nullptr;
  bool active = false;
  std::vector<AttentionTop> captured;

  bool wants_attention(int layer) override {
    if (!active || request == nullptr || request->top_k <= 0) return false;
    return request->layers.empty() || std::find(request->layers.begin(), request->layers.end(),
                                                layer) != request->layers.end();
  }
  void on_attention(const AttentionEvent& e) override {
    const int64_t n_q = e.q.shape[1], n_kv = e.k.shape[1], n_head = e.q.shape[2];
    const int64_t row = n_q - 1;  // the row whose logits are sampled
    std::vector<float> probs(static_cast<size_t>(n_kv));
    std::vector<int64_t> order(static_cast<size_t>(n_kv));
    const int64_t k = std::min<int64_t>(request->top_k, n_kv);
    auto one_head = [&](int64_t h) {
      const int64_t rows[1] = {row};
      attention_probs(e.q, e.k, e.lse, 0, h, rows, probs.data(), *e.options);
      std::iota(order.begin(), order.end(), int64_t{0});
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
        return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
      });
      AttentionTop t;
      t.layer = e.layer;
      t.head = static_cast<int>(h);
      for (int64_t i = 0; i < k; ++i) {
        t.positions.push_back(order[i]);
        t.weights.push_back(probs[order[i]]);
      }
      captured.push_back(std::move(t));
    };
    if (request->heads.empty()) {
      for (int64_t h = 0; h < n_head; ++h) one_head(h);
    } else {
      for (int h : request->heads) one_head(h);
    }
  }
};

struct Scheduler::Slot {
  AttentionWatch watch;
  std::optional<Session> session;
  std::vector<int32_t> cached;  // the tokens whose K/V the cache holds, in order
  int64_t reusable = 0;         // [0, reusable) was prefilled in whole chunks: safe to reuse

  std::shared_ptr<Job> job;
  int64_t prompt_done = 0;  // prompt tokens in the cache
  bool has_logits = false;  // the last eval's logits are waiting to be sampled
  int32_t pending = -1;     // a sampled token waiting for the round's decode step
  std::optional<Sampler> sampler;
  std::optional<runtime::TextStream> stream;
  std::optional<StreamDecoder> decoder;
  std::vector<int32_t> history;
  std::unordered_map<int32_t, int> counts;  // generated token -> times (presence/frequency)
  std::span<const float> logits;            // of the last eval (the Session's buffer)
  std::vector<float> work, logprobs;
  Clock::time_point t_start;
  bool first_token = true;
};

Scheduler::Scheduler(Model model, SchedulerOptions options)
    : model_(std::move(model)), options_(options) {
  if (options_.n_parallel < 1) {
    core::throw_invalid("parallel slots ", options_.n_parallel, ": expected >= 1");
  }
  if (options_.max_queue < 0) {
    core::throw_invalid("queue length ", options_.max_queue, ": expected >= 0");
  }
  if (options_.prefill_chunk < 1) {
    core::throw_invalid("prefill chunk ", options_.prefill_chunk, ": expected >= 1");
  }
  if (model_.is_decoder()) {
    for (int i = 0; i < options_.n_parallel; ++i) {
      auto slot = std::make_unique<Slot>();
      slot->session.emplace(model_, SessionOptions{.n_ctx = options_.n_ctx,
                                                   .kv_type = options_.kv_type,
                                                   .n_threads = options_.n_threads,
                                                   .observer = &slot->watch,
                                                   .attention_backend = Backend::automatic});
      n_ctx_ = slot->session->n_ctx();
      slots_.push_back(std::move(slot));
    }
  } else {
    n_ctx_ = model_.config().n_ctx;
  }
  if (model_.is_decoder() && model_.has_tokenizer()) end_ids_ = model_.end_of_generation_ids();
  stats_.n_slots = static_cast<int>(slots_.size());
  stats_.ttft_counts.assign(std::size(kTtftBounds) + 1, 0);
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  stop();
}

void Scheduler::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

bool Scheduler::submit(std::shared_ptr<Job> job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    int busy = 0;
    for (const auto& s : slots_) busy += s->job != nullptr;
    if (busy == static_cast<int>(slots_.size()) &&
        static_cast<int>(queue_.size()) >= options_.max_queue) {
      return false;
    }
    queue_.push_back(std::move(job));
    stats_.queue_depth = static_cast<int>(queue_.size());
  }
  cv_.notify_all();
  return true;
}

void Scheduler::run_task(const std::function<void()>& fn) {
  Task task{&fn, nullptr, false};
  {
    std::unique_lock lock(mu_);
    if (stopping_) throw Error("the server is shutting down");
    tasks_.push_back(&task);
    cv_.notify_all();
    task_cv_.wait(lock, [&] { return task.done; });
  }
  if (task.error) std::rethrow_exception(task.error);
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Scheduler::loop() {
  for (;;) {
    std::vector<Task*> tasks;
    {
      std::unique_lock lock(mu_);
      const auto active = [&] {
        for (const auto& s : slots_)
          if (s->job) return true;
        return false;
      };
      cv_.wait(lock, [&] { return stopping_ || !tasks_.empty() || !queue_.empty() || active(); });
      if (stopping_) break;
      tasks.assign(tasks_.begin(), tasks_.end());
      tasks_.clear();
      // Admission: each queued job goes to the free slot whose cache shares the longest
      // reusable prefix with its prompt (the first free one when none does).
      while (!queue_.empty()) {
        Slot* best = nullptr;
        int64_t best_len = -1;
        const auto& prompt = queue_.front()->params.prompt;
        for (const auto& s : slots_) {
          if (s->job) continue;
          int64_t n = 0;
          const int64_t lim = std::min<int64_t>(s->reusable, static_cast<int64_t>(prompt.size()));
          while (n < lim && s->cached[n] == prompt[n]) ++n;
          if (n > best_len) best = s.get(), best_len = n;
        }
        if (best == nullptr) break;
        best->job = std::move(queue_.front());
        queue_.pop_front();
      }
      stats_.queue_depth = static_cast<int>(queue_.size());
      int busy = 0;
      for (const auto& s : slots_) busy += s->job != nullptr;
      stats_.busy_slots = busy;
    }
    for (Task* t : tasks) {
      try {
        (*t->fn)();
      } catch (...) {
        t->error = std::current_exception();
      }
      std::lock_guard lock(mu_);
      t->done = true;
    }
    if (!tasks.empty()) task_cv_.notify_all();
    for (auto& s : slots_) {
      if (!s->job) continue;
      if (!s->sampler) start(*s, s->job);
      if (s->job) step(*s);
    }
    decode_pending();
  }
  // Shutting down: every job still queued or running ends as cancelled, every task fails.
  std::deque<std::shared_ptr<Job>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(queue_);
    for (Task* t : tasks_) {
      t->error = std::make_exception_ptr(Error("the server is shutting down"));
      t->done = true;
    }
    tasks_.clear();
  }
  task_cv_.notify_all();
  for (auto& s : slots_)
    if (s->job) finish(*s, Finish::cancelled);
  for (auto& job : left) {
    std::lock_guard lock(job->mu);
    job->done = true;
    job->finish = Finish::cancelled;
    job->cv.notify_all();
  }
}

void Scheduler::start(Slot& slot, std::shared_ptr<Job> job) {
  const JobParams& p = job->params;
  slot.t_start = Clock::now();
  slot.first_token = true;
  slot.has_logits = false;
  try {
    if (p.prompt.empty()) throw Error("the prompt has no tokens");
    if (static_cast<int64_t>(p.prompt.size()) >= n_ctx_) {
      throw Error(core::concat("the prompt has ", p.prompt.size(),
                               " tokens, which leaves no room in the context of ", n_ctx_));
    }
    SamplingParams sp = p.sampling;
    slot.sampler.emplace(sp);
    const Tokenizer& tok = model_.tokenizer();
    slot.stream.emplace(p.stop);
    slot.decoder.emplace(tok);
    // The prompt goes through the decoder so that the first generated token is decoded as a
    // continuation (SentencePiece strips the leading space of a text's first piece only). An
    // unfinished character at the prompt's end (token ids cut mid-character) is the prompt's,
    // not the reply's: flushed and dropped, so the reply's text is its own tokens' text.
    for (int32_t id : p.prompt) slot.decoder->push(id);
    slot.decoder->flush();
  } catch (const std::exception& e) {
    finish(slot, Finish::error, e.what());
    return;
  }
  slot.history = p.prompt;
  slot.counts.clear();
  // Prefix reuse: cached positions that match, were prefilled in whole chunks, and end on a chunk
  // boundary before the prompt's last token (whose logits must be computed afresh).
  const int64_t C = options_.prefill_chunk;
  const int64_t L = static_cast<int64_t>(p.prompt.size());
  int64_t keep = 0;
  // Prompt logprobs need the logits of every prompt position: nothing cached is reused.
  const int64_t lim = p.echo && p.n_logprobs >= 0 ? 0 : std::min(slot.reusable, L - 1);
  while (keep < lim && slot.cached[keep] == p.prompt[keep]) ++keep;
  keep = keep / C * C;
  slot.session->truncate(std::min<int64_t>(keep, slot.session->n_past()));
  slot.cached.resize(static_cast<size_t>(slot.session->n_past()));
  slot.reusable = std::min(slot.reusable, slot.session->n_past());
  slot.prompt_done = slot.session->n_past();
  slot.watch.request = &p.attention;
  std::lock_guard lock(job->mu);
  job->n_prompt = L;
  job->n_reused = slot.prompt_done;
}

void Scheduler::step(Slot& slot) {
  Job& job = *slot.job;
  if (job.cancelled.load()) {
    finish(slot, Finish::cancelled);
    return;
  }
  const JobParams& p = job.params;
  const int64_t L = static_cast<int64_t>(p.prompt.size());
  try {
    if (slot.prompt_done < L) {
      // One prompt chunk, cut at absolute multiples of prefill_chunk.
      const int64_t C = options_.prefill_chunk;
      const int64_t begin = slot.prompt_done;
      const int64_t end = std::min(L, (begin / C + 1) * C);
      const auto t0 = Clock::now();
      slot.watch.active = end == L;
      slot.watch.captured.clear();
      const bool prompt_logprobs = p.echo && p.n_logprobs >= 0;
      const std::span<const float> rows = slot.session->eval(
          std::span<const int32_t>(p.prompt).subspan(begin, end - begin), prompt_logprobs);
      const auto n_vocab = static_cast<size_t>(model_.config().n_vocab);
      slot.logits = rows.subspan(rows.size() - n_vocab);
      slot.watch.active = false;
      if (prompt_logprobs) prompt_events(slot, rows, begin, end);
      slot.cached.insert(slot.cached.end(), p.prompt.begin() + begin, p.prompt.begin() + end);
      if (end % C == 0 && slot.reusable == begin) slot.reusable = end;
      slot.prompt_done = end;
      {
        std::lock_guard lock(mu_);
        stats_.prompt_tokens += end - begin;
        stats_.prefill_seconds += seconds(t0, Clock::now());
      }
      if (end < L) return;
      slot.has_logits = true;
      if (p.max_tokens == 0) {  // echo: the prompt scored, nothing generated
        finish(slot, Finish::length);
        return;
      }
    }
    sample(slot);
  } catch (const std::exception& e) {
    finish(slot, Finish::error, e.what());
  }
}

void Scheduler::prompt_events(Slot& slot, std::span<const float> rows, int64_t begin, int64_t end) {
  Job& job = *slot.job;
  const JobParams& p = job.params;
  const auto L = static_cast<int64_t>(p.prompt.size());
  const auto n_vocab = static_cast<size_t>(model_.config().n_vocab);
  std::vector<TokenEvent> events;
  if (begin == 0) {
    TokenEvent first;  // the first prompt token: no logprob
    first.id = p.prompt[0];
    first.prompt = true;
    first.has_logprob = false;
    events.push_back(std::move(first));
  }
  // Row r (position begin + r) gives the next prompt token's logprob.
  for (int64_t q = begin; q < end && q + 1 < L; ++q) {
    log_softmax(rows.subspan(static_cast<size_t>(q - begin) * n_vocab, n_vocab), slot.logprobs);
    TokenEvent ev;
    ev.id = p.prompt[static_cast<size_t>(q + 1)];
    ev.prompt = true;
    fill_logprobs(slot.logprobs, ev.id, p.n_logprobs, ev);
    events.push_back(std::move(ev));
  }
  {
    std::lock_guard lock(job.mu);
    for (TokenEvent& ev : events) job.events.push_back(std::move(ev));
  }
  job.cv.notify_all();
}

void Scheduler::sample(Slot& slot) {
  Job& job = *slot.job;
  const JobParams& p = job.params;
  const auto t0 = Clock::now();
  const std::span<const float> last = slot.logits;
  TokenEvent ev;
  if (p.n_logprobs >= 0) log_softmax(last, slot.logprobs);
  // Presence and frequency penalties (OpenAI's definition: over the generated tokens).
  slot.work.assign(last.begin(), last.end());
  if (p.presence_penalty != 0 || p.frequency_penalty != 0) {
    for (const auto& [id, n] : slot.counts) {
      slot.work[static_cast<size_t>(id)] -=
          p.frequency_penalty * static_cast<float>(n) + p.presence_penalty;
    }
  }
  for (const auto& [id, bias] : p.logit_bias) slot.work[static_cast<size_t>(id)] += bias;
  const int32_t next = slot.sampler->sample(slot.work, slot.history);
  ev.id = next;
  if (p.n_logprobs >= 0) fill_logprobs(slot.logprobs, next, p.n_logprobs, ev);
  ev.attention = std::move(slot.watch.captured);
  slot.watch.captured.clear();
  slot.has_logits = false;

  std::optional<Finish> done;
  bool generated = false;
  if (p.stop_at_eos && std::binary_search(end_ids_.begin(), end_ids_.end(), next)) {
    done = Finish::stop;
  } else {
    generated = true;
    slot.history.push_back(next);
    ++slot.counts[next];
    {
      std::lock_guard lock(job.mu);
      ++job.n_generated;
    }
    if (slot.stream->append(slot.decoder->push(next))) done = Finish::stop;
    ev.text = std::string(slot.stream->take_ready());
    if (!done && job.n_generated >= p.max_tokens) done = Finish::length;
    if (!done && slot.session->n_past() >= n_ctx_) done = Finish::length;
    {
      std::lock_guard lock(job.mu);
      job.events.push_back(std::move(ev));
    }
    job.cv.notify_all();
  }
  const auto now = Clock::now();
  {
    std::lock_guard lock(mu_);
    if (slot.first_token) {
      const double t = seconds(job.submitted, now);
      size_t b = 0;
      while (b < std::size(kTtftBounds) && t > kTtftBounds[b]) ++b;
      for (size_t i = b; i < stats_.ttft_counts.size(); ++i) ++stats_.ttft_counts[i];
      stats_.ttft_sum += t;
      ++stats_.ttft_n;
    }
    stats_.generated_tokens += generated;
    stats_.decode_seconds += seconds(t0, now);
  }
  slot.first_token = false;
  if (done) {
    finish(slot, *done);
    return;
  }
  // The token just sampled goes through the model with the other slots' in this round's decode
  // step (decode_pending); its logits wait for the next round.
  slot.pending = next;
}

void Scheduler::decode_pending() {
  std::vector<Slot*> slots;
  std::vector<Session*> sessions;
  std::vector<int32_t> tokens;
  for (auto& s : slots_) {
    if (!s->job || s->pending < 0) continue;
    slots.push_back(s.get());
    sessions.push_back(&*s->session);
    tokens.push_back(s->pending);
    s->pending = -1;
    s->watch.active = true;
    s->watch.captured.clear();
  }
  if (slots.empty()) return;
  // One forward pass for every slot's token: the weights are read once for all of them, and
  // eval_batch keeps each slot's logits independent of the others (batch invariance).
  const auto t0 = Clock::now();
  std::vector<int64_t> n_past(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) n_past[i] = sessions[i]->n_past();
  const auto apply = [&](size_t i, std::span<const float> logits) {
    slots[i]->logits = logits;
    slots[i]->cached.push_back(tokens[i]);
    slots[i]->has_logits = true;
  };
  std::vector<std::pair<Slot*, std::string>> failed;
  try {
    const std::vector<std::span<const float>> logits = eval_batch(sessions, tokens);
    for (size_t i = 0; i < slots.size(); ++i) apply(i, logits[i]);
  } catch (const std::exception& e) {
    if (slots.size() == 1) failed.emplace_back(slots[0], e.what());
    // One slot's failure (non-finite activations from its tokens) must not end the others': each
    // runs its token again alone from where it was, which gives it the same bits.
    for (size_t i = 0; i < slots.size() && slots.size() > 1; ++i) {
      slots[i]->watch.captured.clear();
      try {
        sessions[i]->truncate(n_past[i]);
        Session* one[] = {sessions[i]};
        apply(i, eval_batch(one, std::span<const int32_t>(&tokens[i], 1))[0]);
      } catch (const std::exception& e1) {
        failed.emplace_back(slots[i], e1.what());
      }
    }
  }
  for (Slot* s : slots) s->watch.active = false;
  for (auto& [s, message] : failed) finish(*s, Finish::error, message);
  std::lock_guard lock(mu_);
  stats_.decode_seconds += seconds(t0, Clock::now());
}

void Scheduler::finish(Slot& slot, Finish how, const std::string& error) {
  std::shared_ptr<Job> job = std::move(slot.job);
  slot.job.reset();
  if (how != Finish::error && how != Finish::cancelled && slot.stream && slot.decoder) {
    // The tail held back for a stop string that never came, and an unfinished character.
    if (!slot.stream->stopped()) slot.stream->append(slot.decoder->flush());
    TokenEvent ev;
    ev.text = std::string(slot.stream->take_all());
    if (!ev.text.empty()) {
      std::lock_guard lock(job->mu);
      job->events.push_back(std::move(ev));
    }
  }
  slot.pending = -1;
  slot.sampler.reset();
  slot.stream.reset();
  slot.decoder.reset();
  slot.watch.request = nullptr;
  slot.watch.active = false;
  {
    std::lock_guard lock(job->mu);
    job->done = true;
    job->finish = how;
    job->error = error;
  }
  job->cv.notify_all();
  std::lock_guard lock(mu_);
  ++stats_.jobs_done;
  if (how == Finish::cancelled) ++stats_.jobs_cancelled;
  int busy = 0;
  for (const auto& s : slots_) busy += s->job != nullptr;
  stats_.busy_slots = busy;
}

}  // namespace qkv::serve
