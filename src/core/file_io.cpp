#include "core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "qkv/file_io.h"

namespace qkv::core {
namespace {

const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symbolic link";
  return "not a regular file";
}

std::string parent_dir(const std::string& path) {
  const std::filesystem::path p = std::filesystem::path(path).parent_path();
  return p.empty() ? std::string(".") : p.string();
}

// `path` with symbolic links followed to the file that would be replaced (which may not exist
// yet). Links are resolved one at a time so that a dangling link names its missing target.
std::string resolve_links(const std::string& path) {
  std::filesystem::path p = path;
  for (int hops = 0; hops < 40; ++hops) {
    std::error_code ec;
    if (!std::filesystem::is_symlink(std::filesystem::symlink_status(p, ec))) return p.string();
    std::filesystem::path next = std::filesystem::read_symlink(p, ec);
    if (ec) throw_error(path, ": cannot read the symbolic link: ", ec.message());
    p = next.is_absolute() ? next : p.parent_path() / next;
  }
  throw_error(path, ": too many levels of symbolic links");
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);  // best effort: the rename is already visible; this makes it durable
  ::close(fd);
}

std::atomic<uint64_t> temp_counter{0};

}  // namespace

int open_input_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. It has no effect on
  // a regular file, and anything else is refused below before a byte is read.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) throw_error(path, ": no such file");
    throw_error(path, ": cannot open for reading: ", std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw_error(path, ": cannot read its file status: ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw_error(path, " is ", kind_of(st.st_mode), ", not a regular file; give the path of a file");
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

std::string read_input_file(const std::string& path) {
  const int fd = open_input_file(path);
  std::string out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw_error(path, ": read failed: ", std::strerror(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

void check_output_path(const std::string& path) {
  if (path.empty()) throw_error("the output path is empty");
  const std::string target = resolve_links(path);
  struct stat st {};
  if (::stat(target.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISSOCK(st.st_mode)) {
      throw_error(path, " is ", kind_of(st.st_mode), "; give the path of a file to write");
    }
    if (S_ISREG(st.st_mode) && (st.st_mode & 0222) == 0) {
      throw_error(path, " is read-only; make it writable or choose another output path");
    }
    return;
  }
  const std::string dir = parent_dir(target);
  struct stat ds {};
  if (::stat(dir.c_str(), &ds) != 0 || !S_ISDIR(ds.st_mode)) {
    throw_error(path, ": the directory ", dir, " does not exist");
  }
}

OutputFile::OutputFile(std::string path) : path_(std::move(path)) {
  check_output_path(path_);
  target_ = resolve_links(path_);
  struct stat st {};
  const bool exists = ::stat(target_.c_str(), &st) == 0;
  if (exists && S_ISFIFO(st.st_mode)) {
    // Non-blocking: with no reader the open fails (ENXIO) instead of waiting for one.
    fd_ = ::open(target_.c_str(), O_WRONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd_ < 0 && errno == ENXIO) {
      throw_error(path_,
                  " is a FIFO (named pipe) with no reader; start the reader first or "
                  "write to a regular file");
    }
    if (fd_ < 0) fail("cannot open for writing", errno);
    const int flags = ::fcntl(fd_, F_GETFL);
    if (flags >= 0) ::fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK);
    direct_ = true;
    return;
  }
  if (exists && S_ISCHR(st.st_mode)) {
    fd_ = ::open(target_.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd_ < 0) fail("cannot open for writing", errno);
    direct_ = true;
    return;
  }
  // A regular file or a new one: a temporary file beside it, created exclusively (a leftover of a
  // killed run is never reused) with the mode a new file would get (0666 less the umask).
  for (int attempt = 0; fd_ < 0; ++attempt) {
    temp_ = concat(target_, ".part-", ::getpid(), "-", temp_counter.fetch_add(1));
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && (errno != EEXIST || attempt > 100)) {
      const int err = errno;
      temp_.clear();
      throw_error(path_, ": cannot create a file in ", parent_dir(target_), ": ",
                  std::strerror(err));
    }
  }
  if (exists) ::fchmod(fd_, st.st_mode & 07777);  // replacing keeps the file's permissions
}

OutputFile::~OutputFile() {
  if (!committed_) discard();
}

void OutputFile::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_.empty()) ::unlink(temp_.c_str());
  temp_.clear();
}

void OutputFile::fail(const std::string& what, int err) {
  discard();
  const std::string reason = err == ENOSPC ? "no space left on the device" : std::strerror(err);
  throw_error(path_, ": ", what, ": ", reason);
}

void OutputFile::write(const void* data, size_t n) {
  if (fd_ < 0) throw_error(path_, ": write after the file was closed");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("write failed", w < 0 ? errno : ENOSPC);
    p += w;
    n -= static_cast<size_t>(w);
    written_ += static_cast<uint64_t>(w);
  }
}

void OutputFile::write_at(const void* data, size_t n, uint64_t offset) {
  if (fd_ < 0) throw_error(path_, ": write after the file was closed");
  if (direct_) throw_error(path_, " is a device or FIFO; this output needs a regular file");
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("write failed", w < 0 ? errno : ENOSPC);
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

void OutputFile::resize(uint64_t bytes) {
  if (fd_ < 0) throw_error(path_, ": resize after the file was closed");
  if (direct_) throw_error(path_, " is a device or FIFO; this output needs a regular file");
  if (::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) fail("cannot set its size", errno);
  // ftruncate does not reserve blocks: a full disk shows up in the writes or at fsync.
}

void OutputFile::commit() {
  if (committed_) return;
  if (fd_ < 0) throw_error(path_, ": commit after the file was closed");
  if (!direct_ && ::fsync(fd_) != 0) fail("write failed when flushing to disk", errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("write failed when closing", errno);
  if (!direct_) {
    if (::rename(temp_.c_str(), target_.c_str()) != 0) fail("cannot replace the file", errno);
    temp_.clear();
    fsync_dir(parent_dir(target_));
  }
  committed_ = true;
}

void write_output_file(const std::string& path, std::string_view bytes) {
  OutputFile f(path);
  f.write(bytes);
  f.commit();
}

}  // namespace qkv::core

namespace qkv {

std::string read_input_file(const std::string& path) {
  return core::read_input_file(path);
}

void write_output_file(const std::string& path, std::string_view bytes) {
  core::write_output_file(path, bytes);
}

void check_output_path(const std::string& path) {
  core::check_output_path(path);
}

}  // namespace qkv
