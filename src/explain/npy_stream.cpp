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
  const int err = errno;
  throw Error("explain: " + what + " " + path + ": " +
              (err == ENOSPC ? std::string("no space left on the device") : std::strerror(err)) +
              "; choose a file in a writable directory with free space");
}

}  // namespace

NpyStream::NpyStream(std::string path) : path_(std::move(path)) {
  // The .npy's temporary file is created now so that an unwritable path fails before the run.
  // Rows land at their offsets, so a device or FIFO (no seeking) is refused here too.
  out_ = std::make_unique<core::OutputFile>(path_);
  if (out_->direct()) {
    throw Error("explain: " + path_ +
                " is a device or FIFO; the attention stream is laid out by seeking and needs a "
                "regular file");
  }
  part_path_ = path_ + ".part";
  part_ = std::fopen(part_path_.c_str(), "w+b");
  if (!part_) fail("cannot create the attention stream's row file", part_path_);
  buffer_.resize(size_t(1) << 20);  // 1 MiB: large sequential writes whatever the row length
  std::setvbuf(part_, buffer_.data(), _IOFBF, buffer_.size());
}

NpyStream::~NpyStream() {
  if (part_) {
    std::fclose(part_);
    std::remove(part_path_.c_str());
  }
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
  core::OutputFile& out = *out_;
  {
    out.write_at(header.data(), header.size(), 0);
    // Rows never captured read as zeros (a sparse extent where the file system has them).
    out.resize(static_cast<uint64_t>(bytes));
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
      out.write_at(row.data(), static_cast<size_t>(t) * 4, static_cast<uint64_t>(off));
    }
    if (std::ferror(part_)) fail("reading back", part_path_);
  }
  out.commit();
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
