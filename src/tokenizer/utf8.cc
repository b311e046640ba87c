#include "tokenizer/utf8.h"

namespace lowbit::utf8 {
namespace {

// Length of the well-formed sequence starting at s[i], or the negated length (<= -1) of the
// maximal subpart that is a prefix of a well-formed sequence but stops short or goes wrong.
// `truncated` tells whether the subpart ran into the end of the input.
int scan(std::string_view s, size_t i, bool* truncated) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size();
  uint8_t b = p[i];
  *truncated = false;
  if (b < 0x80) return 1;
  int need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    need = 1;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 2;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 3;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int k = 1; k <= need; ++k) {
    if (i + k >= n) {
      *truncated = true;
      return -k;
    }
    uint8_t c = p[i + k];
    bool ok = k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) return -k;
  }
  return need + 1;
}

}  // namespace

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

size_t valid_prefix_length(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    // ASCII runs are the common case: skip 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      __builtin_memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    bool truncated;
    int len = scan(s, i, &truncated);
    if (len < 0) return i;
    i += len;
  }
  return n;
}

std::string repair(std::string_view s) {
  size_t good = valid_prefix_length(s);
  if (good == s.size()) return std::string(s);
  std::string out(s.substr(0, good));
  size_t i = good;
  while (i < s.size()) {
    bool truncated;
    int len = scan(s, i, &truncated);
    if (len > 0) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      append(out, kReplacement);
      i += -len;
    }
  }
  return out;
}

size_t complete_prefix_length(std::string_view s) {
  // Only the last three bytes can start an unfinished sequence.
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    size_t i = n - back;
    if ((uint8_t(s[i]) & 0xC0) == 0x80) continue;  // continuation byte: look further back
    bool truncated;
    int len = scan(s, i, &truncated);
    return (len < 0 && truncated) ? i : n;
  }
  return n;
}

}  // namespace lowbit::utf8
