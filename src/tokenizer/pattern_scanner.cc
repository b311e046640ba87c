#include "tokenizer/pattern_scanner.h"

#include "tokenizer/unicode_data.h"
#include "tokenizer/utf8.h"

namespace lowbit {
namespace {

constexpr std::string_view kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Character classes of the patterns, for one code point.
enum : uint8_t { kLetter = 1, kNumber = 2, kSpace = 4, kNewline = 8 };

// Class bits for each property byte (category | flags), and for each ASCII code point.
struct ClassTables {
  uint8_t by_props[256];
  uint8_t ascii[128];
  ClassTables() {
    for (int p = 0; p < 256; ++p) {
      uint8_t bits = 0;
      if (unicode::is_letter(uint8_t(p))) bits |= kLetter;
      if (unicode::is_number(uint8_t(p))) bits |= kNumber;
      if (p & unicode::kWhiteSpace) bits |= kSpace;
      by_props[p] = bits;
    }
    const uint8_t* props = unicode::property_table();
    for (int c = 0; c < 128; ++c) {
      ascii[c] = by_props[props[c]] | ((c == '\r' || c == '\n') ? kNewline : 0);
    }
  }
};

struct Text {
  std::string_view s;
  const uint8_t* props = unicode::property_table();
  const ClassTables& classes = tables();

  static const ClassTables& tables() {
    static const ClassTables t;
    return t;
  }

  // Class bits of the code point at i, and its length in *len; 0 bits at the end.
  uint8_t at(size_t i, size_t* len) const {
    if (i >= s.size()) {
      *len = 0;
      return 0;
    }
    uint8_t b = uint8_t(s[i]);
    if (b < 0x80) {
      *len = 1;
      return classes.ascii[b];
    }
    size_t j = i;
    char32_t cp = utf8::decode(s, j);
    *len = j - i;
    return classes.by_props[props[cp]];
  }

  // End of the run of code points, from i, whose class bits satisfy pred.
  template <class Pred>
  size_t run(size_t i, Pred pred) const {
    size_t len;
    while (i < s.size() && pred(at(i, &len))) i += len;
    return i;
  }
};

bool other(uint8_t bits) { return !(bits & (kLetter | kNumber | kSpace)); }  // [^\s\p{L}\p{N}]

// 's 't 're 've 'm 'll 'd at i (text[i] == '\''), case-insensitively or not. Returns the
// match length or 0. Under (?i), 's' also matches U+017F (long s), as in Unicode case folding.
size_t contraction(std::string_view s, size_t i, bool caseless) {
  auto lower = [&](size_t k) -> int {
    if (k >= s.size()) return -1;
    uint8_t c = uint8_t(s[k]);
    if (caseless) {
      if (c >= 'A' && c <= 'Z') return c + 32;
      if (c == 0xC5 && k + 1 < s.size() && uint8_t(s[k + 1]) == 0xBF) return 0x17F;
    }
    return c;
  };
  int a = lower(i + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (a == 0x17F) return 3;
  int b = lower(i + 2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// Whitespace alternatives shared by all three patterns, at i where a run of \s starts:
// \s+(?!\S) then \s+ (and, for Llama3/Qwen2, \s*[\r\n]+ before them).
size_t space_match(const Text& t, size_t i, bool newline_rule) {
  size_t end = i, last_char = i, len;
  size_t last_newline_end = 0;
  while (true) {
    uint8_t bits = t.at(end, &len);
    if (!(bits & kSpace)) break;
    if (bits & kNewline) last_newline_end = end + len;
    last_char = end;
    end += len;
  }
  if (newline_rule && last_newline_end > 0) return last_newline_end;  // \s*[\r\n]+
  if (end == t.s.size()) return end;                                  // \s+(?!\S) at the end
  if (last_char > i) return last_char;  // \s+(?!\S): leave the last space to the next word
  return end;                           // \s+
}

size_t gpt2_match(const Text& t, size_t i) {
  size_t len, len2;
  uint8_t c = t.at(i, &len);
  if (t.s[i] == '\'') {
    if (size_t m = contraction(t.s, i, false)) return i + m;
  }
  size_t start = i;
  uint8_t d = c;
  if (t.s[i] == ' ') {  // optional leading space of " ?\p{L}+", " ?\p{N}+", " ?[^...]+"
    uint8_t next = t.at(i + 1, &len2);
    if (next & (kLetter | kNumber) || (len2 > 0 && other(next))) {
      start = i + 1;
      d = next;
    }
  }
  if (d & kLetter) return t.run(start, [](uint8_t b) { return b & kLetter; });
  if (d & kNumber) return t.run(start, [](uint8_t b) { return b & kNumber; });
  if (other(d) && (start > i || len > 0)) return t.run(start, other);
  return space_match(t, i, false);
}

size_t llama3_match(const Text& t, size_t i, int max_digits) {
  size_t len, len2;
  uint8_t c = t.at(i, &len);
  if (t.s[i] == '\'') {
    if (size_t m = contraction(t.s, i, true)) return i + m;
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c & kLetter) return t.run(i, [](uint8_t b) { return b & kLetter; });
  if (!(c & (kNewline | kNumber)) && (t.at(i + len, &len2) & kLetter)) {
    return t.run(i + len, [](uint8_t b) { return b & kLetter; });
  }
  // \p{N}{1,max}
  if (c & kNumber) {
    size_t end = i + len;
    for (int k = 1; k < max_digits && (t.at(end, &len2) & kNumber); ++k) end += len2;
    return end;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  size_t start = i;
  if (t.s[i] == ' ' && other(t.at(i + 1, &len2)) && len2 > 0) start = i + 1;
  if (start > i || other(c)) {
    size_t end = t.run(start, other);
    return t.run(end, [](uint8_t b) { return b & kNewline; });
  }
  return space_match(t, i, true);
}

}  // namespace

std::optional<PatternScanner> PatternScanner::for_pattern(std::string_view pattern) {
  if (pattern == kGpt2) return PatternScanner(Kind::kGpt2);
  if (pattern == kLlama3) return PatternScanner(Kind::kLlama3);
  if (pattern == kQwen2) return PatternScanner(Kind::kQwen2);
  return std::nullopt;
}

void PatternScanner::find_all(std::string_view subject, std::vector<RegexMatch>& out) const {
  Text t{subject};
  // Every position starts a match of at least one code point, so matches tile the text.
  for (size_t i = 0; i < subject.size();) {
    size_t end;
    switch (kind_) {
      case Kind::kGpt2:
        end = gpt2_match(t, i);
        break;
      case Kind::kLlama3:
        end = llama3_match(t, i, 3);
        break;
      case Kind::kQwen2:
        end = llama3_match(t, i, 1);
        break;
    }
    out.push_back({i, end});
    i = end;
  }
}

}  // namespace lowbit
