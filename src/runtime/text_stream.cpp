#include "runtime/text_stream.h"

#include <algorithm>

#include "core/error.h"
#include "core/utf8.h"

namespace qkv::runtime {

TextStream::TextStream(std::vector<std::string> stop) : stop_(std::move(stop)) {
  for (size_t i = 0; i < stop_.size(); ++i) {
    if (stop_[i].empty()) core::throw_invalid("stop string ", i, " is empty");
    if (!core::valid_utf8(stop_[i])) {
      core::throw_invalid("stop string ", i, " is not valid UTF-8 (invalid byte at offset ",
                          core::find_invalid_utf8(stop_[i]), ")");
    }
  }
}

bool TextStream::append(std::string_view piece) {
  if (stopped_) return true;
  text_ += piece;
  // A match cannot start before emitted_: any text that could begin a stop string was held back.
  size_t cut = std::string::npos;
  for (const std::string& s : stop_) cut = std::min(cut, text_.find(s, emitted_));
  if (cut != std::string::npos) {
    text_.resize(cut);
    ready_ = cut;
    stopped_ = true;
    return true;
  }
  // Hold back the longest tail that is a proper prefix of some stop string.
  size_t hold = 0;
  const size_t fresh = text_.size() - emitted_;
  for (const std::string& s : stop_) {
    for (size_t n = std::min(s.size() - 1, fresh); n > hold; --n) {
      if (std::string_view(text_).substr(text_.size() - n) == std::string_view(s).substr(0, n)) {
        hold = n;
        break;
      }
    }
  }
  ready_ = text_.size() - hold;
  return false;
}

std::string_view TextStream::take_ready() {
  const std::string_view out = std::string_view(text_).substr(emitted_, ready_ - emitted_);
  emitted_ = ready_;
  return out;
}

std::string_view TextStream::take_all() {
  if (!stopped_) ready_ = text_.size();
  return take_ready();
}

}  // namespace qkv::runtime
