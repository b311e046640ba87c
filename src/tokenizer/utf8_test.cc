#include "tokenizer/utf8.h"

#include <gtest/gtest.h>

namespace lowbit {
namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

std::string times(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// Expected values are what Python's bytes.decode("utf-8", "replace") returns.
TEST(Utf8, RepairReplacesEachMaximalSubpart) {
  EXPECT_EQ(utf8::repair("plain \xC3\xA9"), "plain \xC3\xA9");
  EXPECT_EQ(utf8::repair("\xE4\xB8"
                         "A"),
            kFFFD + "A");                                        // truncated 3-byte
  EXPECT_EQ(utf8::repair("\xF0\x9F\x98"), kFFFD);                // truncated at the end
  EXPECT_EQ(utf8::repair("\xF0\x80\x80"), times(kFFFD, 3));      // F0 needs 90..BF
  EXPECT_EQ(utf8::repair("\xED\xA0\x80"), times(kFFFD, 3));      // surrogate
  EXPECT_EQ(utf8::repair("\xC0\xAF"), times(kFFFD, 2));          // overlong
  EXPECT_EQ(utf8::repair("\xF4\x90\x80\x80"), times(kFFFD, 4));  // above U+10FFFF
  EXPECT_EQ(utf8::repair("\xFF"
                         "a\x80"),
            kFFFD + "a" + kFFFD);
  EXPECT_EQ(utf8::repair("\xE1\x80\xE2\xF0\x91\x92\xF1\xBF\x41"), times(kFFFD, 4) + "A");
}

TEST(Utf8, ValidPrefixLength) {
  EXPECT_EQ(utf8::valid_prefix_length("abcdefghijk\xC3"), 11u);
  EXPECT_TRUE(utf8::is_valid("\xF0\x9F\x98\x80 ok"));
  EXPECT_FALSE(utf8::is_valid("\xF0\x9F\x98 ok"));
}

TEST(Utf8, CompletePrefixHoldsBackOnlyAnUnfinishedSequence) {
  EXPECT_EQ(utf8::complete_prefix_length("ab\xE4\xB8"), 2u);
  EXPECT_EQ(utf8::complete_prefix_length("ab\xF0\x9F\x98"), 2u);
  EXPECT_EQ(utf8::complete_prefix_length("ab\xF0"), 2u);
  EXPECT_EQ(utf8::complete_prefix_length("ab\xE4\xB8\x80"), 5u);
  EXPECT_EQ(utf8::complete_prefix_length("ab\x80"), 3u);  // can never complete
  EXPECT_EQ(utf8::complete_prefix_length("ab\xE4"
                                         "A"),
            4u);                                              // already invalid
  EXPECT_EQ(utf8::complete_prefix_length("ab\xED\xA0"), 4u);  // surrogate: invalid
}

}  // namespace
}  // namespace lowbit
