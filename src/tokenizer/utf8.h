// UTF-8 helpers for the tokenizer: decode/encode one code point, and the repair of invalid
// input that Python's bytes.decode("utf-8", errors="replace") does (one U+FFFD per maximal
// invalid subpart), which is also what HF's from_utf8_lossy decode does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit::utf8 {

inline constexpr char32_t kReplacement = 0xFFFD;

// Length of the sequence that starts with lead byte `b` (1 for continuation/invalid bytes,
// so that loops over unchecked text always advance).
inline size_t sequence_length(uint8_t b) {
  if (b < 0xC0) return 1;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  return 4;
}

// Decodes the code point at s[i] and advances i. The text must be valid UTF-8.
inline char32_t decode(std::string_view s, size_t& i) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + i;
  uint8_t b = p[0];
  if (b < 0x80) {
    i += 1;
    return b;
  }
  if (b < 0xE0) {
    i += 2;
    return (char32_t(b & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (b < 0xF0) {
    i += 3;
    return (char32_t(b & 0x0F) << 12) | (char32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  i += 4;
  return (char32_t(b & 0x07) << 18) | (char32_t(p[1] & 0x3F) << 12) | (char32_t(p[2] & 0x3F) << 6) |
         (p[3] & 0x3F);
}

// Decodes the last code point before s[end] (valid UTF-8).
inline char32_t decode_before(std::string_view s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (uint8_t(s[i]) & 0xC0) == 0x80) --i;
  return decode(s, i);
}

void append(std::string& out, char32_t cp);

// Length in bytes of the longest valid UTF-8 prefix of s.
size_t valid_prefix_length(std::string_view s);
inline bool is_valid(std::string_view s) { return valid_prefix_length(s) == s.size(); }

// Replaces each maximal invalid subpart with U+FFFD (Unicode's "best practice", used by both
// Python and Rust). Valid input is returned unchanged.
std::string repair(std::string_view s);

// Length of the prefix of s that can be decoded now: everything except a trailing sequence
// that is incomplete but could still become valid when more bytes arrive.
size_t complete_prefix_length(std::string_view s);

}  // namespace lowbit::utf8
