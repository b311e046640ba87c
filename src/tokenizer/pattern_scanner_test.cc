#include "tokenizer/pattern_scanner.h"

#include <gtest/gtest.h>

#include <random>

#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace lowbit {
namespace {

const char* kPatterns[] = {
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
};

// Code points chosen to hit every branch: contraction letters in both cases (and U+017F,
// which case-folds to s), letters, digits of several scripts, white space including \r \n
// and non-ASCII spaces, punctuation, symbols, marks, CJK and astral letters.
const char32_t kAlphabet[] = {
    '\'',   's',    'S',  't', 'T',   'r',    'R',  'e',    'E',  'v',     'V',     'm',   'M',
    'l',    'L',    'd',  'D', 0x17F, 0x212A, 'a',  'x',    0xE9, 0x4E00,  0x10D50, '0',   '7',
    0x663,  0xFF11, 0xB2, ' ', ' ',   ' ',    '\t', '\r',   '\n', 0x0B,    0xA0,    0x85,  0x3000,
    0x2028, 0x180E, '.',  ',', '!',   '-',    '(',  0x2014, '$',  0x1F600, 0x301,   0x200D};

TEST(PatternScanner, RecognisesOnlyExactPatterns) {
  for (const char* p : kPatterns) EXPECT_TRUE(PatternScanner::for_pattern(p).has_value()) << p;
  EXPECT_FALSE(PatternScanner::for_pattern(R"(\p{L}+)").has_value());
}

TEST(PatternScanner, MatchesPcre2OnRandomText) {
  std::mt19937 rng(11);
  for (const char* pattern : kPatterns) {
    Regex fast = Regex::from_oniguruma(pattern, "fast");
    Regex slow = Regex::from_oniguruma(pattern, "slow", /*allow_scanner=*/false);
    for (int round = 0; round < 3000; ++round) {
      std::string text;
      int n = 1 + int(rng() % 24);
      for (int k = 0; k < n; ++k) {
        utf8::append(text, kAlphabet[rng() % (sizeof(kAlphabet) / sizeof(kAlphabet[0]))]);
      }
      std::vector<RegexMatch> a, b;
      fast.find_all(text, a);
      slow.find_all(text, b);
      ASSERT_EQ(a.size(), b.size()) << pattern << " on '" << text << "'";
      for (size_t k = 0; k < a.size(); ++k) {
        ASSERT_TRUE(a[k].begin == b[k].begin && a[k].end == b[k].end)
            << pattern << " on '" << text << "' match " << k;
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
