#include "chat/py_text.h"

#include <utf8proc.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <system_error>

namespace lowbit::jinja::py {
namespace {

constexpr char32_t kReplacement = 0xFFFD;

}  // namespace

char32_t next_code_point(std::string_view text, size_t& i) {
  const auto byte = static_cast<unsigned char>(text[i]);
  int extra = 0;
  char32_t cp = 0;
  if (byte < 0x80) {
    ++i;
    return byte;
  } else if ((byte & 0xE0) == 0xC0) {
    extra = 1;
    cp = byte & 0x1F;
  } else if ((byte & 0xF0) == 0xE0) {
    extra = 2;
    cp = byte & 0x0F;
  } else if ((byte & 0xF8) == 0xF0) {
    extra = 3;
    cp = byte & 0x07;
  } else {
    ++i;
    return kReplacement;
  }
  if (i + extra >= text.size()) {
    i = text.size();
    return kReplacement;
  }
  for (int k = 1; k <= extra; ++k) {
    const auto cont = static_cast<unsigned char>(text[i + k]);
    if ((cont & 0xC0) != 0x80) {
      i += k;
      return kReplacement;
    }
    cp = (cp << 6) | (cont & 0x3F);
  }
  i += extra + 1;
  return cp;
}

namespace {

utf8proc_category_t category(char32_t cp) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(cp));
}

bool is_lower_cp(char32_t cp) { return category(cp) == UTF8PROC_CATEGORY_LL; }
bool is_upper_cp(char32_t cp) {
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT;
}

// Full case mappings that expand to several code points (Unicode SpecialCasing.txt); only the
// ones a chat template could plausibly meet. Everything else uses the simple 1:1 mapping.
void append_upper(std::u32string& out, char32_t cp) {
  switch (cp) {
    case 0x00DF:
      out += U"SS";
      return;  // ß
    case 0xFB00:
      out += U"FF";
      return;
    case 0xFB01:
      out += U"FI";
      return;
    case 0xFB02:
      out += U"FL";
      return;
    case 0xFB03:
      out += U"FFI";
      return;
    case 0xFB04:
      out += U"FFL";
      return;
    case 0xFB05:
    case 0xFB06:
      out += U"ST";
      return;
    default:
      out += static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(cp)));
  }
}

void append_title(std::u32string& out, char32_t cp) {
  switch (cp) {
    case 0x00DF:
      out += U"Ss";
      return;
    case 0xFB01:
      out += U"Fi";
      return;
    case 0xFB02:
      out += U"Fl";
      return;
    default:
      out += static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(cp)));
  }
}

// str.lower() also applies the Greek final-sigma rule and İ -> i̇.
void append_lower(std::u32string& out, const std::u32string& text, size_t i) {
  const char32_t cp = text[i];
  if (cp == 0x0130) {
    out += U"i\u0307";
    return;
  }
  if (cp == 0x03A3) {
    const bool after_cased = i > 0 && is_cased(text[i - 1]);
    const bool before_cased = i + 1 < text.size() && is_cased(text[i + 1]);
    out += (after_cased && !before_cased) ? char32_t{0x03C2} : char32_t{0x03C3};
    return;
  }
  out += static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp)));
}

bool is_line_break(char32_t cp) {
  switch (cp) {
    case '\n':
    case '\r':
    case 0x0B:
    case 0x0C:
    case 0x1C:
    case 0x1D:
    case 0x1E:
    case 0x85:
    case 0x2028:
    case 0x2029:
      return true;
    default:
      return false;
  }
}

void append_hex(std::string& out, char prefix, uint32_t value, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '\\';
  out += prefix;
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += kHex[(value >> shift) & 0xF];
}

}  // namespace

std::u32string decode(std::string_view utf8) {
  std::u32string out;
  out.reserve(utf8.size());
  for (size_t i = 0; i < utf8.size();) out += next_code_point(utf8, i);
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string encode(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) append_utf8(out, cp);
  return out;
}

bool is_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

size_t length(std::string_view text) {
  size_t n = 0;
  for (char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

size_t code_point_index(std::string_view text, size_t byte_offset) {
  return length(text.substr(0, byte_offset));
}

bool is_space(char32_t cp) {
  switch (cp) {
    case ' ':
    case '\t':
    case '\n':
    case '\r':
    case 0x0B:
    case 0x0C:
    case 0x1C:
    case 0x1D:
    case 0x1E:
    case 0x1F:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool is_printable(char32_t cp) {
  if (cp == ' ') return true;
  switch (category(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS:
      return false;
    default:
      return true;
  }
}

bool is_cased(char32_t cp) {
  const auto c = category(cp);
  return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

std::string upper(std::string_view text) {
  std::u32string out;
  for (char32_t cp : decode(text)) append_upper(out, cp);
  return encode(out);
}

std::string lower(std::string_view text) {
  const std::u32string cps = decode(text);
  std::u32string out;
  for (size_t i = 0; i < cps.size(); ++i) append_lower(out, cps, i);
  return encode(out);
}

std::string title(std::string_view text) {
  const std::u32string cps = decode(text);
  std::u32string out;
  bool previous_cased = false;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (previous_cased) {
      append_lower(out, cps, i);
    } else {
      append_title(out, cps[i]);
    }
    previous_cased = is_cased(cps[i]);
  }
  return encode(out);
}

std::string capitalize(std::string_view text) {
  const std::u32string cps = decode(text);
  std::u32string out;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0) {
      append_title(out, cps[i]);
    } else {
      append_lower(out, cps, i);
    }
  }
  return encode(out);
}

bool is_lower(std::string_view text) {
  bool any_cased = false;
  for (char32_t cp : decode(text)) {
    if (is_upper_cp(cp)) return false;
    any_cased |= is_lower_cp(cp);
  }
  return any_cased;
}

bool is_upper(std::string_view text) {
  bool any_cased = false;
  for (char32_t cp : decode(text)) {
    if (is_lower_cp(cp) || category(cp) == UTF8PROC_CATEGORY_LT) return false;
    any_cased |= is_upper_cp(cp);
  }
  return any_cased;
}

std::string strip(std::string_view text, const std::optional<std::string>& chars, bool left,
                  bool right) {
  const std::u32string cps = decode(text);
  const std::u32string set = chars ? decode(*chars) : std::u32string();
  auto strippable = [&](char32_t cp) {
    return chars ? set.find(cp) != std::u32string::npos : is_space(cp);
  };
  size_t begin = 0;
  size_t end = cps.size();
  if (left) {
    while (begin < end && strippable(cps[begin])) ++begin;
  }
  if (right) {
    while (end > begin && strippable(cps[end - 1])) --end;
  }
  return encode(std::u32string_view(cps).substr(begin, end - begin));
}

std::vector<std::string> split(std::string_view text, const std::optional<std::string>& sep,
                               int64_t maxsplit) {
  std::vector<std::string> parts;
  int64_t budget = maxsplit < 0 ? INT64_MAX : maxsplit;
  if (sep) {
    size_t start = 0;
    while (budget-- > 0) {
      const size_t hit = text.find(*sep, start);
      if (hit == std::string_view::npos) break;
      parts.emplace_back(text.substr(start, hit - start));
      start = hit + sep->size();
    }
    parts.emplace_back(text.substr(start));
    return parts;
  }
  const std::u32string cps = decode(text);
  const std::u32string_view view(cps);
  size_t i = 0;
  const size_t n = cps.size();
  while (budget-- > 0) {
    while (i < n && is_space(cps[i])) ++i;
    if (i == n) break;
    const size_t j = i;
    while (i < n && !is_space(cps[i])) ++i;
    parts.push_back(encode(view.substr(j, i - j)));
  }
  if (i < n) {
    while (i < n && is_space(cps[i])) ++i;
    if (i != n) parts.push_back(encode(view.substr(i)));
  }
  return parts;
}

std::vector<std::string> rsplit(std::string_view text, const std::optional<std::string>& sep,
                                int64_t maxsplit) {
  std::vector<std::string> parts;
  int64_t budget = maxsplit < 0 ? INT64_MAX : maxsplit;
  if (sep) {
    size_t end = text.size();
    while (budget-- > 0 && end >= sep->size()) {
      const size_t hit = text.rfind(*sep, end - sep->size());
      if (hit == std::string_view::npos) break;
      parts.emplace_back(text.substr(hit + sep->size(), end - hit - sep->size()));
      end = hit;
    }
    parts.emplace_back(text.substr(0, end));
    std::reverse(parts.begin(), parts.end());
    return parts;
  }
  const std::u32string cps = decode(text);
  const std::u32string_view view(cps);
  int64_t i = static_cast<int64_t>(cps.size()) - 1;
  while (budget-- > 0) {
    while (i >= 0 && is_space(cps[i])) --i;
    if (i < 0) break;
    const int64_t j = i;
    while (i >= 0 && !is_space(cps[i])) --i;
    parts.push_back(encode(view.substr(i + 1, j - i)));
  }
  if (i >= 0) {
    while (i >= 0 && is_space(cps[i])) --i;
    if (i >= 0) parts.push_back(encode(view.substr(0, i + 1)));
  }
  std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<std::string> splitlines(std::string_view text, bool keepends) {
  const std::u32string cps = decode(text);
  const std::u32string_view view(cps);
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < cps.size();) {
    if (!is_line_break(cps[i])) {
      ++i;
      continue;
    }
    size_t end_of_break = i + 1;
    if (cps[i] == '\r' && end_of_break < cps.size() && cps[end_of_break] == '\n') ++end_of_break;
    lines.push_back(encode(view.substr(start, (keepends ? end_of_break : i) - start)));
    start = i = end_of_break;
  }
  if (start < cps.size()) lines.push_back(encode(view.substr(start)));
  return lines;
}

std::string replace(std::string_view text, std::string_view old, std::string_view with,
                    int64_t count) {
  int64_t budget = count < 0 ? INT64_MAX : count;
  std::string out;
  if (old.empty()) {
    // Python inserts the replacement before every code point and at the end.
    size_t i = 0;
    while (i < text.size()) {
      if (budget-- > 0) out += with;
      const size_t begin = i;
      next_code_point(text, i);
      out += text.substr(begin, i - begin);
    }
    if (budget-- > 0) out += with;
    return out;
  }
  size_t start = 0;
  while (budget-- > 0) {
    const size_t hit = text.find(old, start);
    if (hit == std::string_view::npos) break;
    out += text.substr(start, hit - start);
    out += with;
    start = hit + old.size();
  }
  out += text.substr(start);
  return out;
}

std::string repr(std::string_view text) {
  const std::u32string cps = decode(text);
  const bool has_single = cps.find(U'\'') != std::u32string::npos;
  const bool has_double = cps.find(U'"') != std::u32string::npos;
  const char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t cp : cps) {
    if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out += '\\';
      append_utf8(out, cp);
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp < 0x20 || cp == 0x7F) {
      append_hex(out, 'x', cp, 2);
    } else if (cp < 0x7F || is_printable(cp)) {
      append_utf8(out, cp);
    } else if (cp <= 0xFF) {
      append_hex(out, 'x', cp, 2);
    } else if (cp <= 0xFFFF) {
      append_hex(out, 'u', cp, 4);
    } else {
      append_hex(out, 'U', cp, 8);
    }
  }
  out += quote;
  return out;
}

std::string float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // Shortest round-trip digits in scientific form: "[-]d[.ddd]e[+-]XX".
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  std::string_view sci(buf, result.ptr - buf);
  std::string sign;
  if (sci.front() == '-') {
    sign = "-";
    sci.remove_prefix(1);
  }
  const size_t e_pos = sci.find('e');
  const int exponent = std::atoi(std::string(sci.substr(e_pos + 1)).c_str());
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits += c;
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  // CPython's repr: digits are 0.DDD x 10^decpt; fixed notation iff -4 < decpt <= 16.
  const int decpt = exponent + 1;
  if (decpt > -4 && decpt <= 16) {
    std::string out = sign;
    const int n = static_cast<int>(digits.size());
    if (decpt <= 0) {
      out += "0." + std::string(-decpt, '0') + digits;
    } else if (decpt >= n) {
      out += digits + std::string(decpt - n, '0') + ".0";
    } else {
      out += digits.substr(0, decpt) + "." + digits.substr(decpt);
    }
    return out;
  }
  std::string out = sign + digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  const int shown = decpt - 1;
  out += shown < 0 ? "e-" : "e+";
  const std::string magnitude = std::to_string(std::abs(shown));
  if (magnitude.size() < 2) out += '0';
  out += magnitude;
  return out;
}

std::vector<int64_t> slice_positions(int64_t size, std::optional<int64_t> start,
                                     std::optional<int64_t> stop, std::optional<int64_t> step) {
  const int64_t s = step.value_or(1);
  // Callers reject step == 0 before calling (Python raises ValueError there).
  const int64_t lower = s > 0 ? 0 : -1;
  const int64_t upper = s > 0 ? size : size - 1;
  auto adjust = [&](std::optional<int64_t> v, int64_t fallback) {
    if (!v) return fallback;
    int64_t x = *v;
    if (x < 0) {
      x += size;
      if (x < lower) x = lower;
    } else if (x > upper) {
      x = upper;
    }
    return x;
  };
  const int64_t begin = adjust(start, s < 0 ? upper : lower);
  const int64_t end = adjust(stop, s < 0 ? lower : upper);
  std::vector<int64_t> positions;
  for (int64_t i = begin; s > 0 ? i < end : i > end; i += s) positions.push_back(i);
  return positions;
}

}  // namespace lowbit::jinja::py
