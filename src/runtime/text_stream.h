// Generated text on its way to the caller: holds back a tail that may be the start of a stop
// string, cuts the text at the first stop string, and emits the rest as soon as it is safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace qkv::runtime {

class TextStream {
 public:
  // Stop strings must be non-empty valid UTF-8 (throws InvalidArgument naming the bad one), so
  // every cut and every held-back tail falls on a character boundary.
  explicit TextStream(std::vector<std::string> stop);

  // Appends decoded text (complete UTF-8 characters). Returns true when a stop string is now
  // complete; the text is then cut before it and nothing more is accepted.
  bool append(std::string_view piece);
  // Text that can go to the caller now: everything up to the held-back tail (or the stop string).
  std::string_view take_ready();
  // At the end of generation (no stop string): releases the held-back tail as well.
  std::string_view take_all();

  const std::string& text() const { return text_; }
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_;
  std::string text_;    // all text so far (cut at the stop string once found)
  size_t emitted_ = 0;  // bytes of text_ already handed out
  size_t ready_ = 0;    // bytes of text_ that may be handed out
  bool stopped_ = false;
};

}  // namespace qkv::runtime
