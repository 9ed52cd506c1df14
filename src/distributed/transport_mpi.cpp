// The MPI side of the distributed layer: the communicator and watched transfers (transport.h).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"
#include "distributed/transport.h"

namespace qkv {
namespace {

// Every MPI call of the layer holds this lock: the helper threads of two concurrent exchanges
// (the backward pass's K/V and gradient transfers) and the caller never call MPI at once, which
// is all MPI_THREAD_SERIALIZED asks.
std::mutex& mpi_lock() {
  static std::mutex m;
  return m;
}

std::atomic<bool> g_failed{false};

std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return core::concat("MPI error ", code);
  return std::string(buf, static_cast<size_t>(len));
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  // A lost peer would keep MPI_Finalize waiting: end the whole job instead.
  if (g_failed.load()) MPI_Abort(MPI_COMM_WORLD, 1);
  MPI_Finalize();
}

// MPI counts are int: larger transfers go in pieces of this many bytes.
constexpr int64_t kPiece = int64_t{1} << 30;

}  // namespace

bool distributed_has_mpi() {
  return true;
}

Communicator::Communicator() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    if (provided < MPI_THREAD_SERIALIZED) {
      core::throw_error("distributed: the MPI library offers thread level ", provided,
                        ", below MPI_THREAD_SERIALIZED (the transfers run on a helper thread)");
    }
    std::atexit(finalize_at_exit);
  }
  // Errors come back as return codes (named in our exceptions) instead of aborting the job from
  // inside MPI with a message that names no peer.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  if (const char* t = std::getenv("QKV_MPI_TIMEOUT_S")) {
    const double v = std::atof(t);
    if (v > 0) timeout_s = v;
  }
}

Communicator& Communicator::world() {
  static Communicator c;
  return c;
}

// The collectives are point-to-point messages between every pair of ranks, watched like the
// ring's transfers: a rank that never answers is named (MPI's blocking collectives would wait
// for it forever, and the non-blocking ones do not say who is missing). The jobs are small (a
// handful of ranks, fingerprints and decode results), so P - 1 messages per rank cost nothing.
void Communicator::barrier() {
  const char in = 0;
  std::vector<char> out(static_cast<size_t>(size_));
  allgather(&in, out.data(), 1);
}

void Communicator::allgather(const void* in, void* out, int64_t bytes) {
  char* o = static_cast<char*>(out);
  std::memcpy(o + rank_ * bytes, in, static_cast<size_t>(bytes));
  if (size_ == 1) return;
  distributed::Exchange ex(*this);
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    ex.add_send(in, bytes, r, distributed::kTagCollective);
    ex.add_recv(o + r * bytes, bytes, r, distributed::kTagCollective);
  }
  ex.start();
  ex.finish();
}

void Communicator::broadcast(void* data, int64_t bytes, int root) {
  if (size_ == 1) return;
  distributed::Exchange ex(*this);
  if (rank_ == root) {
    for (int r = 0; r < size_; ++r) {
      if (r != root) ex.add_send(data, bytes, r, distributed::kTagCollective);
    }
  } else {
    ex.add_recv(data, bytes, root, distributed::kTagCollective);
  }
  ex.start();
  ex.finish();
}

void Communicator::gather(const void* in, void* out, std::span<const int64_t> bytes, int root) {
  if (static_cast<int>(bytes.size()) != size_) {
    core::throw_invalid("Communicator::gather: ", bytes.size(), " sizes for ", size_, " ranks");
  }
  if (rank_ == root) {
    char* o = static_cast<char*>(out);
    int64_t at = 0;
    distributed::Exchange ex(*this);
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) {
        std::memcpy(o + at, in, static_cast<size_t>(bytes[r]));
      } else if (bytes[r] > 0) {
        ex.add_recv(o + at, bytes[r], r, distributed::kTagCollective);
      }
      at += bytes[r];
    }
    ex.start();
    ex.finish();
  } else if (bytes[rank_] > 0) {
    distributed::Exchange ex(*this);
    ex.add_send(in, bytes[rank_], root, distributed::kTagCollective);
    ex.start();
    ex.finish();
  }
}

double Communicator::max(double value) {
  std::vector<double> all(static_cast<size_t>(size_));
  allgather(&value, all.data(), sizeof(double));
  return *std::max_element(all.begin(), all.end());
}

void Communicator::abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

namespace distributed {

void mark_failed() {
  g_failed.store(true);
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Exchange::Op {
  char* data;
  int64_t bytes;
  int peer, tag;
  bool send;
  std::vector<MPI_Request> requests;
  size_t done = 0;  // requests[0, done) completed
};

Exchange::Exchange(Communicator& comm, bool link) : comm_(&comm), link_(link) {}

void Exchange::add_send(const void* data, int64_t bytes, int dest, int tag) {
  ops_.push_back(std::unique_ptr<Op>(
      new Op{const_cast<char*>(static_cast<const char*>(data)), bytes, dest, tag, true, {}}));
}

void Exchange::add_recv(void* data, int64_t bytes, int src, int tag) {
  ops_.push_back(std::unique_ptr<Op>(new Op{static_cast<char*>(data), bytes, src, tag, false, {}}));
}

void Exchange::start() {
  t_start_ = now_s();
  {
    std::lock_guard<std::mutex> lock(mpi_lock());
    for (auto& op : ops_) {
      for (int64_t off = 0; off == 0 || off < op->bytes; off += kPiece) {
        const int n = static_cast<int>(std::min(kPiece, op->bytes - off));
        MPI_Request r;
        const int rc =
            op->send
                ? MPI_Isend(op->data + off, n, MPI_BYTE, op->peer, op->tag, MPI_COMM_WORLD, &r)
                : MPI_Irecv(op->data + off, n, MPI_BYTE, op->peer, op->tag, MPI_COMM_WORLD, &r);
        if (rc != MPI_SUCCESS) {
          mark_failed();
          core::throw_error("distributed: posting a ", op->send ? "send to" : "receive from",
                            " rank ", op->peer, " failed: ", mpi_error_string(rc));
        }
        op->requests.push_back(r);
      }
    }
  }
  started_ = true;
  thread_ = std::thread([this] { poll(); });
}

void Exchange::poll() {
  const double deadline = t_start_ + comm_->timeout_s;
  const double arrive = t_start_ + (link_ ? static_cast<double>(comm_->delay_us) * 1e-6 : 0.0);
  double last = t_start_;
  for (;;) {
    bool all = true;
    {
      std::lock_guard<std::mutex> lock(mpi_lock());
      for (auto& op : ops_) {
        while (op->done < op->requests.size()) {
          int flag = 0;
          MPI_Status st;
          const int rc = MPI_Test(&op->requests[op->done], &flag, &st);
          if (rc != MPI_SUCCESS) {
            error_ = core::concat("MPI failed to ", op->send ? "send to" : "receive from", " rank ",
                                  op->peer, " (", mpi_error_string(rc), "): that rank is lost");
            return;
          }
          if (!flag) break;
          ++op->done;
          last = now_s();
        }
        if (op->done < op->requests.size()) all = false;
      }
    }
    if (all) break;
    const double t = now_s();
    if (t > deadline) {
      for (auto& op : ops_) {
        if (op->done < op->requests.size()) {
          error_ = core::concat("rank ", op->peer, op->send ? " took nothing" : " sent nothing",
                                " for ", comm_->timeout_s, " s (QKV_MPI_TIMEOUT_S): that rank is ",
                                "lost or stuck");
          return;
        }
      }
    }
    if (stop_.load()) return;
    // Yield the core to the kernel's threads between polls; 20 us is far below a block's compute.
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  // The emulated link: a received block is usable no earlier than delay_us after it was sent.
  bool any_recv = false;
  for (auto& op : ops_) any_recv |= !op->send;
  if (any_recv && last < arrive) {
    std::this_thread::sleep_for(std::chrono::duration<double>(arrive - now_s()));
    last = arrive;
  }
  transfer_s_ = last - t_start_;
}

double Exchange::finish() {
  if (!started_ || finished_) return 0;
  const double t0 = now_s();
  thread_.join();
  finished_ = true;
  if (!error_.empty()) {
    mark_failed();
    core::throw_error("distributed: rank ", comm_->rank(), ": ", error_);
  }
  return now_s() - t0;
}

Exchange::~Exchange() {
  if (thread_.joinable()) {
    stop_.store(true);
    thread_.join();
    // Requests still pending when the caller gave up: the job cannot finish cleanly.
    if (!finished_) mark_failed();
  }
}

}  // namespace distributed
}  // namespace qkv
