// Helpers for building error messages that name the problem: concat("k.shape[2] = ", 3, ...).
#pragma once

#include <sstream>
#include <string>
#include <utility>

#include "qkv/error.h"

namespace qkv::core {

template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <typename... Args>
[[noreturn]] void throw_invalid(Args&&... args) {
  throw InvalidArgument(concat(std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void throw_error(Args&&... args) {
  throw Error(concat(std::forward<Args>(args)...));
}

}  // namespace qkv::core
