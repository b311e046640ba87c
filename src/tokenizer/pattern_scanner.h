// Hand-written matchers for the three split regexes nearly every byte-level BPE model uses
// (GPT-2's, and the Llama 3 / Qwen2 pattern with \p{N}{1,3} or \p{N}), several times faster
// than the regex engine. They must find exactly the matches PCRE2 finds for the pattern;
// pattern_scanner_test.cc compares the two on random text.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace lowbit {

class PatternScanner {
 public:
  enum class Kind { kGpt2, kLlama3, kQwen2 };

  // The scanner for `pattern` (Oniguruma syntax, exactly as in tokenizer.json), if any.
  static std::optional<PatternScanner> for_pattern(std::string_view pattern);

  // All matches in `subject`, as Regex::find_all would report them.
  void find_all(std::string_view subject, std::vector<RegexMatch>& out) const;

 private:
  explicit PatternScanner(Kind kind) : kind_(kind) {}
  Kind kind_;
};

}  // namespace lowbit
