// NpyStream: captured rows appended to a .part file as they come, laid out as one .npy at the end.
#include "npy_stream.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iomanip>
#include <sstream>

#include "explain_internal.h"
#include "qkv/error.h"

namespace qkv {

std::string StreamedMaps::note() const {
  std::ostringstream s;
  s << "attention maps streamed to " << path << ": float32 [" << n_layers << ", " << n_heads << ", "
    << n_tokens << ", " << n_tokens << "], " << rows << " rows, " << bytes << " bytes ("
    << std::setprecision(3) << static_cast<double>(bytes) / (1 << 20) << " MiB)";
  return s.str();
}

namespace explain_detail {

namespace {

struct RecordHead {
  int32_t li = 0, hi = 0;
  int64_t pos = 0, n = 0;
};

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw Error(
      "explain: " + what + " " + path + ": " + std::strerror(errno) +
      "; choose a file in a writable directory with free space (CaptureOptions::stream_npy, "
      "qkv --npy-stream)");
}

void pwrite_all(int fd, const void* data, size_t bytes, int64_t offset, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t w = ::pwrite(fd, p, bytes, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("writing the attention maps to", path);
    p += w;
    bytes -= static_cast<size_t>(w);
    offset += w;
  }
}

}  // namespace

NpyStream::NpyStream(std::string path) : path_(std::move(path)), part_path_(path_ + ".part") {
  // The .npy itself is created now so that an unwritable path fails before the run, not after.
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("cannot create the attention stream", path_);
  ::close(fd);
  part_ = std::fopen(part_path_.c_str(), "w+b");
  if (!part_) {
    const int err = errno;
    std::remove(path_.c_str());
    errno = err;
    fail("cannot create the attention stream's row file", part_path_);
  }
  buffer_.resize(size_t(1) << 20);  // 1 MiB: large sequential writes whatever the row length
  std::setvbuf(part_, buffer_.data(), _IOFBF, buffer_.size());
}

NpyStream::~NpyStream() {
  if (part_) {
    std::fclose(part_);
    std::remove(part_path_.c_str());
  }
  if (!finished_) std::remove(path_.c_str());
}

void NpyStream::write_row(int li, int hi, int64_t pos, const float* p, int64_t n) {
  if (failed_ || finished_) return;
  const RecordHead h{.li = li, .hi = hi, .pos = pos, .n = n};
  if (std::fwrite(&h, sizeof h, 1, part_) != 1 ||
      std::fwrite(p, sizeof(float), static_cast<size_t>(n), part_) != static_cast<size_t>(n)) {
    failed_ = true;  // reported by finish(): an observer in the middle of a forward pass
  }
  ++rows_;
}

StreamedMaps NpyStream::finish(int64_t n_layers, int64_t n_heads, int64_t n_tokens) {
  if (finished_) throw Error("explain: the attention stream " + path_ + " was already finished");
  if (failed_ || std::fflush(part_) != 0)
    fail("writing the attention stream's rows to", part_path_);
  const int64_t t = n_tokens;
  const std::string header = npy_header({n_layers, n_heads, t, t});
  const auto data0 = static_cast<int64_t>(header.size());
  const int64_t bytes = data0 + n_layers * n_heads * t * t * 4;
  const int fd = ::open(path_.c_str(), O_WRONLY | O_TRUNC);
  if (fd < 0) fail("cannot reopen the attention stream", path_);
  try {
    pwrite_all(fd, header.data(), header.size(), 0, path_);
    // Rows never captured read as zeros (a sparse extent where the file system has them).
    if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) fail("cannot size", path_);
    std::rewind(part_);
    std::vector<float> row;  // [max(t, n)]: one row, zero-padded to t keys
    RecordHead h;
    while (std::fread(&h, sizeof h, 1, part_) == 1) {
      row.assign(static_cast<size_t>(std::max(t, h.n)), 0.f);
      if (std::fread(row.data(), sizeof(float), static_cast<size_t>(h.n), part_) !=
          static_cast<size_t>(h.n)) {
        fail("reading back", part_path_);
      }
      if (h.pos >= t) continue;
      const int64_t off = data0 + ((int64_t(h.li) * n_heads + h.hi) * t + h.pos) * t * 4;
      pwrite_all(fd, row.data(), static_cast<size_t>(t) * 4, off, path_);
    }
    if (std::ferror(part_)) fail("reading back", part_path_);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) fail("writing the attention maps to", path_);
  std::fclose(part_);
  part_ = nullptr;
  std::remove(part_path_.c_str());
  finished_ = true;
  return StreamedMaps{.path = path_,
                      .n_layers = n_layers,
                      .n_heads = n_heads,
                      .n_tokens = t,
                      .rows = rows_,
                      .bytes = bytes};
}

}  // namespace explain_detail
}  // namespace qkv
