// A read-only private file mapping of given bytes, as a model file's weights lie in memory: the
// tests of the copies Linear makes out of such mappings (huge pages, interleaved layouts, int8
// repacks) use it.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

namespace qkv::test {

// `bytes` of `data` written 32 bytes into a temporary file (rows start 32 bytes into a page, as in
// GGUF), mapped PROT_READ / MAP_PRIVATE, the file unlinked; unmapped on destruction. data() is
// null (after a test failure) when any step failed.
class MappedCopy {
 public:
  MappedCopy(const void* data, size_t bytes) : size_(bytes + kHead) {
    char path[] = "/tmp/qkv_mapped_test_XXXXXX";
    const int fd = mkstemp(path);
    EXPECT_GE(fd, 0);
    if (fd < 0) return;
    const std::vector<uint8_t> head(kHead, 0);
    const bool written = write(fd, head.data(), kHead) == static_cast<ssize_t>(kHead) &&
                         write(fd, data, bytes) == static_cast<ssize_t>(bytes);
    EXPECT_TRUE(written) << "writing " << path;
    if (written) map_ = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    std::remove(path);
    EXPECT_NE(map_, MAP_FAILED);
    if (map_ == MAP_FAILED) map_ = nullptr;
  }
  ~MappedCopy() {
    if (map_) munmap(map_, size_);
  }
  MappedCopy(const MappedCopy&) = delete;
  MappedCopy& operator=(const MappedCopy&) = delete;

  // The copy of data[0] (null if mapping failed), and the whole mapping's range.
  const uint8_t* data() const { return map_ ? static_cast<const uint8_t*>(map_) + kHead : nullptr; }
  const uint8_t* map_begin() const { return static_cast<const uint8_t*>(map_); }
  size_t map_size() const { return size_; }

 private:
  static constexpr size_t kHead = 32;
  size_t size_;
  void* map_ = nullptr;
};

}  // namespace qkv::test
