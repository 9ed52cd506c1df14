// Test helpers for special files: a scratch directory, a FIFO, a device node and a small full
// file system, each created where the machine allows it (tests skip with the reason otherwise).
#pragma once

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace qkv::test {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it at scope exit.
class ScratchDir {
 public:
  ScratchDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/qkv-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A tmpfs of `kib` KiB mounted on a fresh directory (needs CAP_SYS_ADMIN); unmounted at scope
// exit. ok() is false, with the system's reason in why(), where mounting is not permitted.
class SmallTmpfs {
 public:
  explicit SmallTmpfs(int kib) {
    const std::string opts = "size=" + std::to_string(kib) + "k";
    if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, opts.c_str()) == 0) {
      mounted_ = true;
    } else {
      why_ = std::string("cannot mount a small tmpfs: ") + std::strerror(errno);
    }
  }
  ~SmallTmpfs() {
    if (mounted_) ::umount2(dir_.path().c_str(), MNT_DETACH);
  }
  bool ok() const { return mounted_; }
  const std::string& why() const { return why_; }
  std::string operator/(const std::string& name) const { return dir_ / name; }
  // Fills the file system with one file, so that the next write fails with ENOSPC.
  void fill() const {
    std::ofstream f(dir_ / "filler", std::ios::binary);
    std::string block(4096, 'x');
    while (f.write(block.data(), static_cast<std::streamsize>(block.size()))) {
    }
  }

 private:
  ScratchDir dir_;
  bool mounted_ = false;
  std::string why_;
};

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline bool is_char_device(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
}

// A character device node like /dev/null (major 1, minor 3) at `path`; false if mknod is refused.
inline bool make_null_device(const std::string& path) {
  return ::mknod(path.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0;
}

}  // namespace qkv::test
