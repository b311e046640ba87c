#include "runtime/stop_strings.h"

#include <algorithm>

namespace lowbit {

StopStrings::StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string StopStrings::push(std::string_view piece) {
  if (stopped_) return {};
  const size_t old_size = text_.size();
  text_.append(piece);
  size_t longest = 0;
  for (const auto& s : stops_) longest = std::max(longest, s.size());
  // A stop string ending in the new text starts at most longest-1 bytes before it.
  const size_t search_from = old_size >= longest ? old_size - longest + 1 : 0;
  size_t cut = std::string::npos;
  for (const auto& s : stops_) {
    size_t at = text_.find(s, std::max(search_from, emitted_));
    if (at != std::string::npos && (cut == std::string::npos || at < cut)) {
      cut = at;
      matched_ = s;
    }
  }
  if (cut != std::string::npos) {
    text_.resize(cut);
    stopped_ = true;
    std::string out = text_.substr(emitted_);
    emitted_ = text_.size();
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const auto& s : stops_)
    for (size_t n = std::min(s.size() - 1, text_.size() - emitted_); n > hold; --n)
      if (std::string_view(text_).substr(text_.size() - n) == std::string_view(s).substr(0, n)) {
        hold = n;
        break;
      }
  std::string out = text_.substr(emitted_, text_.size() - emitted_ - hold);
  emitted_ += out.size();
  return out;
}

std::string StopStrings::flush() {
  std::string out = text_.substr(emitted_);
  emitted_ = text_.size();
  return out;
}

}  // namespace lowbit
