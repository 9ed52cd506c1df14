#include "formats/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <utility>

#include "core/file_io.h"

namespace qkv {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  // Refuses a FIFO, directory or device by name without blocking on it.
  const int fd = core::open_input_file(path);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    core::throw_error(path, ": cannot read its file status: ", std::strerror(err));
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      core::throw_error(path, ": cannot memory-map ", size_, " bytes: ", std::strerror(err));
    }
    data_ = static_cast<const std::byte*>(p);
    mapped_ = true;
  }
  ::close(fd);
}

MappedFile::MappedFile(std::string name, std::span<const std::byte> bytes)
    : path_(std::move(name)), owned_(bytes.begin(), bytes.end()) {
  data_ = owned_.data();
  size_ = owned_.size();
}

MappedFile::~MappedFile() {
  if (mapped_) ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace qkv

namespace qkv::formats {

int64_t checked_mul(int64_t a, int64_t b, std::string_view file, std::string_view field) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) {
    core::throw_error(file, ": ", field, ": size ", a, " x ", b,
                      " overflows a 64-bit byte count (corrupt dimensions)");
  }
  return r;
}

uint64_t tensor_bytes(std::string_view file, std::string_view name, TensorType type,
                      const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      core::throw_error(file, ": tensor '", name, "' shape[", i, "]: expected >= 0, found ",
                        shape[i]);
    }
    n = checked_mul(n, shape[i], file, core::concat("tensor '", name, "' shape"));
  }
  const int64_t block = tensor_type_block(type);
  if (block > 1) {
    const int64_t inner = shape.empty() ? 1 : shape.back();
    if (inner % block != 0) {
      core::throw_error(file, ": tensor '", name, "' (", tensor_type_name(type),
                        "): innermost dimension expected a multiple of ", block, ", found ", inner);
    }
  }
  return static_cast<uint64_t>(checked_mul(n / block, tensor_type_block_bytes(type), file,
                                           core::concat("tensor '", name, "' bytes")));
}

void validate_tensor_layout(std::string_view file, std::vector<TensorInfo*>& tensors,
                            uint64_t region_begin, uint64_t region_end, uint64_t alignment) {
  for (TensorInfo* t : tensors) {
    if (t->offset < region_begin || t->offset > region_end || t->n_bytes > region_end - t->offset) {
      core::throw_error(file, ": tensor '", t->name, "' (", tensor_type_name(t->type), ") data [",
                        t->offset, ", ", t->offset + t->n_bytes,
                        "): expected inside the data section [", region_begin, ", ", region_end,
                        "), found past its end (a truncated or corrupt file)");
    }
    if (alignment > 1 && (t->offset - region_begin) % alignment != 0) {
      core::throw_error(file, ": tensor '", t->name, "' offset ", t->offset - region_begin,
                        ": expected a multiple of the alignment ", alignment);
    }
  }
  std::vector<TensorInfo*> sorted = tensors;
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    const TensorInfo& a = *sorted[i - 1];
    const TensorInfo& b = *sorted[i];
    if (a.n_bytes > 0 && b.n_bytes > 0 && a.offset + a.n_bytes > b.offset) {
      core::throw_error(file, ": tensors '", a.name, "' [", a.offset, ", ", a.offset + a.n_bytes,
                        ") and '", b.name, "' [", b.offset, ", ", b.offset + b.n_bytes,
                        ") overlap: expected disjoint data");
    }
  }
}

void align_tensor_data(const std::vector<TensorInfo*>& tensors,
                       std::vector<std::shared_ptr<const void>>& storage) {
  constexpr uint64_t kAlign = 4;  // alignof(float), the largest the kernels read in place
  constexpr uint64_t kSlot = 64;  // copies start on cache lines
  uint64_t total = 0;
  for (const TensorInfo* t : tensors) {
    if (t->n_bytes > 0 && reinterpret_cast<uintptr_t>(t->data) % kAlign != 0) {
      total += (t->n_bytes + kSlot - 1) / kSlot * kSlot;
    }
  }
  if (total == 0) return;
  auto buf = std::make_shared<std::vector<uint64_t>>(total / sizeof(uint64_t));
  auto* dst = reinterpret_cast<std::byte*>(buf->data());
  for (TensorInfo* t : tensors) {
    if (t->n_bytes > 0 && reinterpret_cast<uintptr_t>(t->data) % kAlign != 0) {
      std::memcpy(dst, t->data, t->n_bytes);
      t->data = dst;
      dst += (t->n_bytes + kSlot - 1) / kSlot * kSlot;
    }
  }
  storage.push_back(std::move(buf));
}

}  // namespace qkv::formats
