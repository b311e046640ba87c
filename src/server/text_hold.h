// Shared helper of the streaming parsers: how much of a text's end might be the start of a tag
// that the next piece completes (and so must be held back rather than shown).
#pragma once

#include <algorithm>
#include <string_view>

namespace lowbit {

// Length of the longest suffix of `text` that is a proper prefix of `tag`.
inline size_t partial_tag_suffix(std::string_view text, std::string_view tag) {
  for (size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n)
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  return 0;
}

inline bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; });
}

inline std::string_view trim_blank(std::string_view s) {
  auto blank = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace lowbit
