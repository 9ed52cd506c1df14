// Opening the files a user names: inputs that cannot block, outputs that are never left half
// written and never replace a device or a FIFO.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace qkv::core {

// Opens `path` for reading and returns its descriptor (O_CLOEXEC). Throws Error naming the file
// when it is missing, unreadable or not a regular file (a FIFO, directory, device or socket): the
// open itself never blocks, so a FIFO is refused instead of waiting forever for a writer.
int open_input_file(const std::string& path);

// The whole of a regular file (open_input_file's checks), with every read checked.
std::string read_input_file(const std::string& path);

// Throws Error naming `path` when it cannot be an output: a directory, block device or socket, a
// read-only file, or a path in a missing directory. Lets a long run fail before it starts.
void check_output_path(const std::string& path);

// One output file, written so that a failure (disk full, a kill, an exception) never leaves a
// truncated or empty file under `path`:
//  * a regular file (or a new path) is written to a temporary file in the same directory, every
//    write checked, then flushed, fsync'ed, closed and renamed over `path` by commit();
//  * a character device (/dev/null, /dev/full, a terminal) or a FIFO with a reader is written
//    directly: renaming over it would replace the device node with a regular file;
//  * a directory, block device, socket, read-only file or FIFO without a reader is refused.
// A symbolic link is followed: the file it points to is replaced, the link stays.
// The destructor of an uncommitted OutputFile removes the temporary file (the target is untouched).
class OutputFile {
 public:
  explicit OutputFile(std::string path);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  void write(std::span<const std::byte> s) { write(s.data(), s.size()); }
  // Writes at `offset` without moving the write position; only for a temporary (regular) file.
  void write_at(const void* data, size_t n, uint64_t offset);
  // Sets the size of the temporary file (the tail reads as zeros); not for a direct target.
  void resize(uint64_t bytes);
  // Makes the output visible under path(); throws Error naming the file when any step failed.
  void commit();

  const std::string& path() const { return path_; }
  // True when writing straight to a device or FIFO (no temporary file, no rename).
  bool direct() const { return direct_; }
  uint64_t bytes_written() const { return written_; }

 private:
  [[noreturn]] void fail(const std::string& what, int err);
  void discard() noexcept;

  std::string path_;    // what the user named
  std::string target_;  // path_ with symbolic links resolved: what gets replaced
  std::string temp_;    // the temporary file; empty when direct_
  int fd_ = -1;
  bool direct_ = false, committed_ = false;
  uint64_t written_ = 0;
};

// Writes `bytes` to `path` through an OutputFile (atomically, or directly for a device/FIFO).
void write_output_file(const std::string& path, std::string_view bytes);
inline void write_output_file(const std::string& path, std::span<const std::byte> bytes) {
  write_output_file(path,
                    std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace qkv::core
