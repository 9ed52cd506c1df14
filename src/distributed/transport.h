// Point-to-point transfers between ranks, watched for lost peers (the MPI wrapper: no MPI type
// leaves transport_mpi.cpp, so the rest of the layer and the public header are free of it).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "qkv/distributed.h"

namespace qkv::distributed {

// Tags of the messages of one ring call; MPI keeps messages of one (source, tag) in order, which
// is all the ring needs.
enum Tag : int { kTagKv = 11, kTagGrad = 12, kTagCollective = 13 };

// A set of sends and receives posted together and progressed by a helper thread while the caller
// computes (MPI progresses a large transfer only inside MPI calls, so posting alone would not
// overlap it with the kernel). finish() waits for all of them and throws Error naming the peer
// when MPI reports an error or a transfer makes no progress for comm.timeout_s.
class Exchange {
 public:
  // link: the transfers cross the emulated link (comm.delay_us; the ring's blocks).
  explicit Exchange(Communicator& comm, bool link = false);
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;
  ~Exchange();

  void add_send(const void* data, int64_t bytes, int dest, int tag);
  void add_recv(void* data, int64_t bytes, int src, int tag);
  // Posts everything added and starts the helper thread.
  void start();
  // Waits for every transfer; returns the seconds this call waited.
  double finish();
  bool active() const { return started_ && !finished_; }
  // Seconds from start() until the last transfer completed (received ones no earlier than
  // comm.delay_us after start()).
  double transfer_s() const { return transfer_s_; }

 private:
  struct Op;
  void poll();

  Communicator* comm_;
  bool link_ = false;
  std::vector<std::unique_ptr<Op>> ops_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool started_ = false, finished_ = false;
  double t_start_ = 0, transfer_s_ = 0;
  std::string error_;  // set by the helper thread
};

// Marks the job as failed: at exit the process calls MPI_Abort instead of MPI_Finalize, which
// would wait for the lost peer.
void mark_failed();

// Monotonic seconds.
double now_s();

}  // namespace qkv::distributed
