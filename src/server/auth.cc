#include "server/auth.h"

#include <cstddef>
#include <cstdint>

namespace lowbit {

bool constant_time_equals(std::string_view a, std::string_view b) {
  // Walk the longer string fully and fold the length difference into the result, so neither
  // the position of the first mismatch nor a length mismatch ends the loop early.
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  uint32_t diff = uint32_t(a.size() ^ b.size());
  for (size_t i = 0; i < n; ++i) {
    const uint8_t x = i < a.size() ? uint8_t(a[i]) : 0;
    const uint8_t y = i < b.size() ? uint8_t(b[i]) : 0;
    diff |= uint32_t(x ^ y);
  }
  // volatile: keep the compiler from turning the fold into an early-exit comparison.
  volatile uint32_t result = diff;
  return result == 0;
}

std::string_view bearer_token(std::string_view h) {
  constexpr std::string_view kScheme = "Bearer ";
  if (h.size() < kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    char c = h[i];
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    char k = kScheme[i];
    if (k >= 'A' && k <= 'Z') k = char(k - 'A' + 'a');
    if (c != k) return {};
  }
  h.remove_prefix(kScheme.size());
  while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.remove_prefix(1);
  while (!h.empty() && (h.back() == ' ' || h.back() == '\t')) h.remove_suffix(1);
  return h;
}

}  // namespace lowbit
