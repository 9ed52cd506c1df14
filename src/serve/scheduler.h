// The server's scheduler: N slots (one Session, i.e. one KV cache, each) and a bounded queue,
// driven by one thread. It knows token sequences and slots, not HTTP (server.cpp translates).
//
// Each round the thread admits queued jobs into free slots, then advances every active slot by
// one step: a prompt chunk of `prefill_chunk` tokens (so a long prompt does not stall the other
// streams) or one decode step (sample from the last logits, hand the token to the job, run it).
//
// Batch invariance: a job's tokens never depend on what else runs. Every slot's forward passes
// are its own (no row of another sequence is in them), and the prompt is cut into chunks at
// absolute positions that are multiples of `prefill_chunk` whatever the load, so the same prompt
// always runs the same passes with the same shapes. Prefix reuse keeps that true: a new job
// reuses only the cached positions that an earlier prompt filled in whole chunks and that match
// the new prompt, cut to a chunk boundary, i.e. exactly the K/V a fresh run would compute.

#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "qkv/session.h"

namespace qkv::serve {

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
};

// The attention of the query that produced a token, for one layer and head: the top-k key
// positions and their exact probabilities (recomputed from the kernel's log-sum-exp).
struct AttentionTop {
  int layer = 0;
  int head = 0;
  std::vector<int64_t> positions;
  std::vector<float> weights;
};

struct AttentionRequest {
  int top_k = 0;  // 0: off
  std::vector<int> layers;
  std::vector<int> heads;
};

// One generated token as the job sees it.
struct TokenEvent {
  int32_t id = -1;                // -1: the final text flush (no token)
  std::string text;               // text this token released (may be empty: held back or partial)
  float logprob = 0;              // log p(id) under the model (before sampling transforms)
  std::vector<TokenLogprob> top;  // the n_logprobs most likely tokens
  std::vector<AttentionTop> attention;
  // A prompt token's logprob (JobParams::echo with logprobs): sent before the generated ones, in
  // prompt order; the first prompt token has none (has_logprob false).
  bool prompt = false;
  bool has_logprob = true;
};

struct JobParams {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  float presence_penalty = 0;
  float frequency_penalty = 0;
  // Added to the logits before sampling (after the penalties); -infinity bans the token.
  std::vector<std::pair<int32_t, float>> logit_bias;
  int64_t max_tokens = 256;
  const char* max_tokens_field = "max_tokens";  // the request's name for it (in errors)
  std::vector<std::string> stop;
  bool stop_at_eos = true;
  int n_logprobs = -1;  // -1: none; else the chosen token's logprob and this many top ones
  // With n_logprobs >= 0: every prompt token's logprob under the tokens before it too (prompt
  // TokenEvents; the prompt then runs from position 0, no cached prefix, its chunks with all
  // logits). max_tokens may then be 0 (score the prompt only).
  bool echo = false;
  AttentionRequest attention;
};

enum class Finish : uint8_t { stop, length, cancelled, error };

// A request's state, shared by the HTTP thread that waits on it and the scheduler thread.
struct Job {
  JobParams params;
  std::atomic<bool> cancelled{false};  // set by the HTTP side (client gone)
  std::chrono::steady_clock::time_point submitted = std::chrono::steady_clock::now();

  std::mutex mu;
  std::condition_variable cv;
  std::deque<TokenEvent> events;  // produced, not yet consumed
  bool done = false;
  Finish finish = Finish::stop;
  std::string error;
  int64_t n_prompt = 0, n_generated = 0, n_reused = 0;

  // Waits up to `timeout_ms` for events or the end; moves the events out.
  std::vector<TokenEvent> take(int timeout_ms, bool& is_done);
};

struct SchedulerOptions {
  int n_parallel = 4;
  int64_t n_ctx = 0;
  KvType kv_type = KvType::f32;
  int n_threads = 0;
  int max_queue = 64;
  int64_t prefill_chunk = 64;
};

// Counters for /metrics (read under the scheduler's lock).
struct SchedulerStats {
  int64_t prompt_tokens = 0, reused_tokens = 0, generated_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  int queue_depth = 0, busy_slots = 0, n_slots = 0;
  int64_t jobs_done = 0, jobs_cancelled = 0;
  // time to first token: cumulative counts per upper bound (kTtftBounds) and the sum
  std::vector<int64_t> ttft_counts;
  double ttft_sum = 0;
  int64_t ttft_n = 0;
};
inline constexpr double kTtftBounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,    2.5,   5,    10,  30};

class Scheduler {
 public:
  Scheduler(Model model, SchedulerOptions options);
  ~Scheduler();  // stops the thread; unfinished jobs end as cancelled

  const Model& model() const { return model_; }
  int64_t n_ctx() const { return n_ctx_; }
  // False when the queue is full (the caller answers 503).
  bool submit(std::shared_ptr<Job> job);
  // Runs `task` on the scheduler thread between steps (forward passes are never concurrent) and
  // waits for it; rethrows what it throws.
  void run_task(const std::function<void()>& task);
  SchedulerStats stats() const;
  void stop();

 private:
  struct Slot;
  void loop();
  void start(Slot& slot, std::shared_ptr<Job> job);
  void step(Slot& slot);
  void sample(Slot& slot);
  // Echo with logprobs: the prompt tokens' events from a chunk's rows of logits [end - begin].
  void prompt_events(Slot& slot, std::span<const float> rows, int64_t begin, int64_t end);
  void decode_pending();
  void finish(Slot& slot, Finish how, const std::string& error = {});

  Model model_;
  SchedulerOptions options_;
  int64_t n_ctx_ = 0;
  std::vector<int32_t> end_ids_;  // tokens that end a reply (EOS, end of turn), sorted
  std::vector<std::unique_ptr<Slot>> slots_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  struct Task {
    const std::function<void()>* fn;
    std::exception_ptr error;
    bool done = false;
  };
  std::deque<Task*> tasks_;
  std::condition_variable task_cv_;
  bool stopping_ = false;
  SchedulerStats stats_;
  std::thread thread_;
};

}  // namespace qkv::serve
