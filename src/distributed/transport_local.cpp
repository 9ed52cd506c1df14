// The distributed layer built without MPI: a job of one rank. Ring and sharded calls then run
// locally and never exchange anything.
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "distributed/transport.h"

namespace qkv {

bool distributed_has_mpi() {
  return false;
}

Communicator::Communicator() = default;

Communicator& Communicator::world() {
  static Communicator c;
  return c;
}

void Communicator::barrier() {}

void Communicator::allgather(const void* in, void* out, int64_t bytes) {
  std::memcpy(out, in, static_cast<size_t>(bytes));
}

void Communicator::broadcast(void*, int64_t, int) {}

void Communicator::gather(const void* in, void* out, std::span<const int64_t> bytes, int) {
  if (bytes.size() != 1) {
    core::throw_invalid("Communicator::gather: ", bytes.size(), " sizes for 1 rank");
  }
  std::memcpy(out, in, static_cast<size_t>(bytes[0]));
}

double Communicator::max(double value) {
  return value;
}

void Communicator::abort(int code) {
  std::_Exit(code);
}

namespace distributed {

void mark_failed() {}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Exchange::Op {};

Exchange::Exchange(Communicator& comm, bool link) : comm_(&comm), link_(link) {}

void Exchange::add_send(const void*, int64_t, int dest, int) {
  core::throw_error("distributed: a send to rank ", dest, " in a build without MPI (QKV_MPI=OFF)");
}

void Exchange::add_recv(void*, int64_t, int src, int) {
  core::throw_error("distributed: a receive from rank ", src,
                    " in a build without MPI (QKV_MPI=OFF)");
}

void Exchange::start() {}

double Exchange::finish() {
  return 0;
}

void Exchange::poll() {}

Exchange::~Exchange() = default;

}  // namespace distributed
}  // namespace qkv
