// Streaming captured probability rows to disk (CaptureOptions::stream_npy): not public API.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/file_io.h"
#include "qkv/explain.h"

namespace qkv::explain_detail {

// Rows are appended to `path.part` as they are produced, each as a record
//   int32 layer_sel, int32 head_sel, int64 position, int64 n, float32 p[n]
// (n: the row with its trailing zeros trimmed, so a causal row costs its own length). The number
// of tokens is known only at the end; finish() then writes `path` as one float32 C-order .npy
// [n_layer_sel, n_head_sel, T, T] by reading the records back in order (a row seen twice: the
// later one wins) and removes the .part file. Memory: the stdio buffer and one row, whatever T.
class NpyStream {
 public:
  // Opens both files; throws Error naming the path and the system's reason when it cannot.
  explicit NpyStream(std::string path);
  ~NpyStream();  // removes the .part file; `path` is replaced only by a successful finish()
  NpyStream(const NpyStream&) = delete;
  NpyStream& operator=(const NpyStream&) = delete;

  void write_row(int li, int hi, int64_t pos, const float* p, int64_t n);
  // Throws Error naming the file when a write failed (disk full) or the file cannot be written.
  StreamedMaps finish(int64_t n_layers, int64_t n_heads, int64_t n_tokens);
  bool finished() const { return finished_; }

 private:
  std::string path_, part_path_;
  std::FILE* part_ = nullptr;
  std::unique_ptr<core::OutputFile> out_;  // the .npy, renamed into place by finish()
  int64_t rows_ = 0;
  bool failed_ = false, finished_ = false;
  std::vector<char> buffer_;  // stdio buffer of the .part file
};

}  // namespace qkv::explain_detail
