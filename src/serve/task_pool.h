// The HTTP server's worker threads: one per open connection, started when every thread is busy,
// up to a limit. cpp-httplib's own pool has a fixed number of threads, and a connection holds its
// thread for as long as the client takes to send a request (up to the read timeout per read), so
// a few dozen clients sending their bodies slowly (or never finishing them) left nothing to
// answer anyone else. Threads that are started stay (idle ones cost a little memory) until
// shutdown; beyond the limit, connections wait for a thread.
#pragma once

#include <httplib.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qkv::serve {

class TaskPool : public httplib::TaskQueue {
 public:
  explicit TaskPool(size_t max_threads) : max_threads_(max_threads) {}
  ~TaskPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock(mu_);
      tasks_.push_back(std::move(fn));
      // Start a thread when the waiting tasks outnumber the idle threads.
      if (!stopping_ && tasks_.size() > n_idle_ && threads_.size() < max_threads_) {
        threads_.emplace_back([this] { work(); });
      }
    }
    cv_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        ++n_idle_;
        cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
        --n_idle_;
        if (tasks_.empty()) return;  // stopping, nothing left to do
        fn = std::move(tasks_.front());
        tasks_.pop_front();
      }
      fn();
    }
  }

  const size_t max_threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;  // only added to under mu_, joined once stopping_
  size_t n_idle_ = 0;
  bool stopping_ = false;
};

}  // namespace qkv::serve
