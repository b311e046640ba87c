#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <fmt/format.h>
#include <pcre2.h>

#include <map>
#include <mutex>
#include <optional>

#include "core/error.h"
#include "tokenizer/pattern_scanner.h"
#include "tokenizer/unicode_data.h"
#include "tokenizer/utf8.h"

namespace lowbit {
namespace {

using unicode::Ranges;

// Class body text ("\x{41}-\x{5A}...") for a set of code points, surrogates left out (PCRE2
// rejects them in UTF mode and they never occur in valid UTF-8).
std::string class_body(const Ranges& ranges) {
  std::string out;
  auto add = [&](char32_t lo, char32_t hi) {
    if (lo > hi) return;
    if (lo == hi) {
      out += fmt::format("\\x{{{:X}}}", uint32_t(lo));
    } else {
      out += fmt::format("\\x{{{:X}}}-\\x{{{:X}}}", uint32_t(lo), uint32_t(hi));
    }
  };
  for (auto [lo, hi] : ranges) {
    if (hi < 0xD800 || lo > 0xDFFF) {
      add(lo, hi);
    } else {
      if (lo < 0xD800) add(lo, 0xD7FF);
      if (hi > 0xDFFF) add(0xE000, hi);
    }
  }
  return out;
}

// Memoised class bodies: the same few classes (\p{L}, \p{N}, \s) recur in every pattern.
const std::string& cached_body(uint32_t categories, uint8_t flags, bool negate) {
  static std::mutex mu;
  static std::map<std::tuple<uint32_t, uint8_t, bool>, std::string> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_tuple(categories, flags, negate);
  auto it = cache.find(key);
  if (it == cache.end()) {
    Ranges r = unicode::ranges_of(categories, flags);
    it = cache.emplace(key, class_body(negate ? unicode::complement(r) : r)).first;
  }
  return it->second;
}

[[noreturn]] void unsupported(std::string_view pattern, size_t at, std::string_view what) {
  fail("regex '{}': {} at offset {} is not supported", pattern, what, at);
}

struct Translator {
  std::string_view p;
  std::string out;
  size_t i = 0;
  int class_depth = 0;

  // Emits a class for (categories, flags), negated or not, inside or outside brackets.
  void emit_set(uint32_t categories, uint8_t flags, bool negate) {
    if (class_depth > 0) {
      out += cached_body(categories, flags, negate);
    } else {
      out += negate ? "[^" : "[";
      out += cached_body(categories, flags, false);
      out += "]";
    }
  }

  // Handles the escape at p[i] == '\\'.
  void escape() {
    if (i + 1 >= p.size()) unsupported(p, i, "trailing backslash");
    char c = p[i + 1];
    switch (c) {
      case 's':
      case 'S':
        emit_set(0, unicode::kWhiteSpace, c == 'S');
        i += 2;
        return;
      case 'w':
      case 'W':
        emit_set(0, unicode::kWord, c == 'W');
        i += 2;
        return;
      case 'd':
      case 'D':
        emit_set(0, unicode::kDigit, c == 'D');
        i += 2;
        return;
      case 'h':
      case 'H':  // Oniguruma: hexadecimal digit
        if (class_depth > 0 && c == 'h') {
          out += "0-9a-fA-F";
        } else if (class_depth > 0) {
          unsupported(p, i, "\\H inside a class");
        } else {
          out += c == 'h' ? "[0-9a-fA-F]" : "[^0-9a-fA-F]";
        }
        i += 2;
        return;
      case 'p':
      case 'P':
        property(c == 'P');
        return;
      case 'u': {
        if (i + 6 > p.size()) unsupported(p, i, "\\u escape");
        out += fmt::format("\\x{{{}}}", p.substr(i + 2, 4));
        i += 6;
        return;
      }
      default:
        out += p.substr(i, 2);
        i += 2;
        return;
    }
  }

  // \p{Name}, \p{^Name}, \P{Name}, \pL.
  void property(bool negate) {
    size_t start = i;
    std::string_view name;
    if (i + 2 < p.size() && p[i + 2] == '{') {
      size_t close = p.find('}', i + 3);
      if (close == std::string_view::npos) unsupported(p, start, "unterminated \\p{");
      name = p.substr(i + 3, close - i - 3);
      i = close + 1;
    } else if (i + 2 < p.size()) {
      name = p.substr(i + 2, 1);
      i += 3;
    } else {
      unsupported(p, start, "\\p without a name");
    }
    if (!name.empty() && name[0] == '^') {
      negate = !negate;
      name.remove_prefix(1);
    }
    uint32_t cats = unicode::categories_named(name);
    if (cats != 0) {
      emit_set(cats, 0, negate);
    } else {
      // Scripts and other properties: PCRE2's own (older) Unicode data.
      out += fmt::format("\\{}{{{}}}", negate ? 'P' : 'p', name);
    }
  }

  std::string run() {
    while (i < p.size()) {
      char c = p[i];
      if (c == '\\') {
        escape();
      } else if (c == '[') {
        if (class_depth > 0) {
          if (i + 1 < p.size() && p[i + 1] == ':') {  // POSIX [:alpha:], same in PCRE2
            size_t close = p.find(":]", i + 2);
            if (close == std::string_view::npos) unsupported(p, i, "unterminated [:");
            out += p.substr(i, close + 2 - i);
            i = close + 2;
            continue;
          }
          unsupported(p, i, "nested character class");
        }
        class_depth = 1;
        out += c;
        ++i;
        if (i < p.size() && p[i] == '^') out += p[i++];
        if (i < p.size() && p[i] == ']') out += "\\]", ++i;  // a leading ] is literal
      } else if (c == ']' && class_depth > 0) {
        class_depth = 0;
        out += c;
        ++i;
      } else if (c == '&' && class_depth > 0 && i + 1 < p.size() && p[i + 1] == '&') {
        unsupported(p, i, "class intersection &&");
      } else if (class_depth == 0 && (c == '^' || c == '$')) {
        out += c == '^' ? "(?m:^)" : "(?m:$)";  // Ruby syntax: line anchors
        ++i;
      } else {
        out += c;
        ++i;
      }
    }
    return out;
  }
};

}  // namespace

std::string translate_oniguruma(std::string_view pattern) {
  Translator t;
  t.p = pattern;
  return t.run();
}

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  std::optional<PatternScanner> scanner;
  ~Code() { pcre2_code_free(code); }
};

namespace {

std::shared_ptr<const Regex::Code> compile(const std::string& pcre_pattern, std::string_view shown,
                                           std::string_view label);

// Per-thread match state: the match data holds only the whole-match pair (capture groups
// are not used), and a JIT stack large enough for long runs of lookahead alternatives.
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
  MatchState() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~MatchState() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
  }
};

}  // namespace

Regex Regex::from_oniguruma(std::string_view pattern, std::string_view label, bool allow_scanner) {
  std::string translated;
  try {
    translated = translate_oniguruma(pattern);
  } catch (const Error& e) {
    fail("{}: {}", label, e.what());
  }
  auto code = compile(translated, pattern, label);
  if (allow_scanner) {
    auto with_scanner = std::const_pointer_cast<Regex::Code>(code);
    with_scanner->scanner = PatternScanner::for_pattern(pattern);
  }
  return Regex(std::move(code));
}

Regex Regex::literal(std::string_view text, std::string_view label) {
  std::string quoted = "\\Q";
  for (size_t i = 0; i < text.size(); ++i) {
    // \Q...\E cannot contain \E itself: close, escape, reopen.
    if (text.compare(i, 2, "\\E") == 0) {
      quoted += "\\E\\\\E\\Q";
      ++i;
    } else {
      quoted += text[i];
    }
  }
  quoted += "\\E";
  return Regex(compile(quoted, text, label));
}

namespace {

std::shared_ptr<const Regex::Code> compile(const std::string& pcre_pattern, std::string_view shown,
                                           std::string_view label) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  auto code = std::make_shared<Regex::Code>();
  code->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pcre_pattern.data()), pcre_pattern.size(),
                             PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    fail("{}: cannot compile regex '{}': {} (at offset {} of the translated pattern)", label, shown,
         reinterpret_cast<const char*>(message), offset);
  }
  code->jit = pcre2_jit_compile(code->code, PCRE2_JIT_COMPLETE) == 0;
  return code;
}

}  // namespace

void Regex::find_all(std::string_view subject, std::vector<RegexMatch>& out) const {
  if (code_->scanner) {
    code_->scanner->find_all(subject, out);
    return;
  }
  thread_local MatchState state;
  const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t n = subject.size();
  size_t pos = 0;
  size_t last_end = SIZE_MAX;
  while (pos <= n) {
    int rc = code_->jit ? pcre2_jit_match(code_->code, s, n, pos, 0, state.data, state.context)
                        : pcre2_match(code_->code, s, n, pos, PCRE2_NO_UTF_CHECK, state.data,
                                      state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      fail("regex match failed: {}", reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.data);
    size_t begin = ov[0], end = ov[1];
    if (begin == end && end == last_end) {
      if (pos >= n) break;
      pos += utf8::sequence_length(uint8_t(subject[pos]));
      continue;
    }
    out.push_back({begin, end});
    last_end = end;
    pos = end;  // after an empty match the rule above steps over this position
  }
}

}  // namespace lowbit
