// Regexes of tokenizer.json, written in Oniguruma syntax (HF compiles them with Oniguruma), run
// with PCRE2's JIT. translate_oniguruma() rewrites what the two dialects read differently:
// Unicode classes (\p{..}, \s, \w, \d) become explicit ranges from Oniguruma's Unicode 16 data,
// \h means a hex digit, ^ and $ match at line boundaries, and \uHHHH is a code point.
// Constructs PCRE2 cannot express (nested classes, class intersection &&) are rejected.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

struct RegexMatch {
  size_t begin, end;
};

class Regex {
 public:
  // `pattern` in Oniguruma syntax; throws Error (naming `label`) if it cannot be compiled.
  // The common GPT-2/Llama 3/Qwen2 patterns run on a PatternScanner unless `allow_scanner`
  // is false (tests compare the two).
  static Regex from_oniguruma(std::string_view pattern, std::string_view label,
                              bool allow_scanner = true);
  // Matches `text` literally.
  static Regex literal(std::string_view text, std::string_view label);

  // All matches in `subject`, left to right, with the empty-match rule of HF's find_iter:
  // an empty match right where the previous match ended is skipped.
  void find_all(std::string_view subject, std::vector<RegexMatch>& out) const;

  struct Code;  // compiled PCRE2 code, opaque outside regex.cc

 private:
  explicit Regex(std::shared_ptr<const Code> code) : code_(std::move(code)) {}
  std::shared_ptr<const Code> code_;
};

// Exposed for tests: the PCRE2 pattern used for an Oniguruma pattern.
std::string translate_oniguruma(std::string_view pattern);

}  // namespace lowbit
