// qkv — errors raised by the public API.
//
// Every error names what was wrong (the argument, file or field) and, where it applies, the value
// expected and the value found. Nothing a user passes in makes the library abort.
#pragma once

#include <stdexcept>
#include <string>

namespace qkv {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Raised for arguments that disagree with each other (shapes, strides, options).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

}  // namespace qkv
