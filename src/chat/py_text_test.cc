#include "chat/py_text.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace lowbit::jinja::py {
namespace {

using Strings = std::vector<std::string>;

TEST(PyText, FloatReprMatchesCPython) {
  EXPECT_EQ(float_repr(1.0), "1.0");
  EXPECT_EQ(float_repr(2.5), "2.5");
  EXPECT_EQ(float_repr(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(float_repr(1e16), "1e+16");
  EXPECT_EQ(float_repr(1e15), "1000000000000000.0");
  EXPECT_EQ(float_repr(1234567890123456.0), "1234567890123456.0");
  EXPECT_EQ(float_repr(0.0001), "0.0001");
  EXPECT_EQ(float_repr(0.00001), "1e-05");
  EXPECT_EQ(float_repr(2.5e-7), "2.5e-07");
  EXPECT_EQ(float_repr(1.5e300), "1.5e+300");
  EXPECT_EQ(float_repr(-0.0), "-0.0");
  EXPECT_EQ(float_repr(-123.25), "-123.25");
  EXPECT_EQ(float_repr(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(float_repr(-std::numeric_limits<double>::infinity()), "-inf");
  EXPECT_EQ(float_repr(std::nan("")), "nan");
}

TEST(PyText, ReprQuotesAndEscapesLikeCPython) {
  EXPECT_EQ(repr("abc"), "'abc'");
  EXPECT_EQ(repr("it's"), "\"it's\"");
  EXPECT_EQ(repr("both ' and \""), "'both \\' and \"'");
  EXPECT_EQ(repr("a\nb\tc\\"), "'a\\nb\\tc\\\\'");
  EXPECT_EQ(repr(std::string("\x00\x7f", 2)), "'\\x00\\x7f'");
  EXPECT_EQ(repr("é🙂"), "'é🙂'");
  EXPECT_EQ(repr("\u00a0\u200b"), "'\\xa0\\u200b'");
}

TEST(PyText, SplitFollowsPythonRules) {
  EXPECT_EQ(split("  a b  ", std::nullopt, -1), (Strings{"a", "b"}));
  EXPECT_EQ(split(" a  b ", std::nullopt, 1), (Strings{"a", "b "}));
  EXPECT_EQ(split("a,,b", std::string(","), -1), (Strings{"a", "", "b"}));
  EXPECT_EQ(split("a b c", std::string(" "), 1), (Strings{"a", "b c"}));
  EXPECT_EQ(split("", std::string(","), -1), (Strings{""}));
  EXPECT_EQ(split("", std::nullopt, -1), (Strings{}));
  EXPECT_EQ(rsplit("a b c", std::string(" "), 1), (Strings{"a b", "c"}));
  EXPECT_EQ(rsplit("  a b c ", std::nullopt, 1), (Strings{"  a b", "c"}));
  EXPECT_EQ(split("x\u3000y", std::nullopt, -1), (Strings{"x", "y"}));  // unicode space
  EXPECT_EQ(splitlines("a\nb\r\nc\r", false), (Strings{"a", "b", "c"}));
  EXPECT_EQ(splitlines("a\n", true), (Strings{"a\n"}));
}

TEST(PyText, StripCaseAndReplace) {
  EXPECT_EQ(strip("\n\n x \n", std::nullopt, true, true), "x");
  EXPECT_EQ(strip("\n\n x \n", std::string("\n"), true, false), " x \n");
  EXPECT_EQ(strip("xxaxx", std::string("x"), false, true), "xxa");
  EXPECT_EQ(strip("ééaé", std::string("é"), true, true), "a");
  EXPECT_EQ(upper("straße é"), "STRASSE É");
  EXPECT_EQ(lower("ΣΑΣ Σ"), "σας σ");
  EXPECT_EQ(title("they're bill's friends"), "They'Re Bill'S Friends");
  EXPECT_EQ(capitalize("hELLO wORLD"), "Hello world");
  EXPECT_EQ(replace("abc", "", "-", -1), "-a-b-c-");
  EXPECT_EQ(replace("aaa", "a", "b", 2), "bba");
  EXPECT_EQ(replace("ééé", "é", "e", -1), "eee");
  EXPECT_TRUE(is_lower("abc1"));
  EXPECT_FALSE(is_lower("123"));
  EXPECT_TRUE(is_upper("ABC"));
}

TEST(PyText, LengthAndSlicesCountCodePoints) {
  EXPECT_EQ(length("héllo🙂"), 6u);
  EXPECT_EQ(slice_positions(4, std::nullopt, std::nullopt, -1), (std::vector<int64_t>{3, 2, 1, 0}));
  EXPECT_EQ(slice_positions(4, 1, 3, std::nullopt), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(slice_positions(4, -2, std::nullopt, std::nullopt), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(slice_positions(4, 10, 20, std::nullopt), (std::vector<int64_t>{}));
  EXPECT_EQ(slice_positions(5, std::nullopt, std::nullopt, -2), (std::vector<int64_t>{4, 2, 0}));
  EXPECT_EQ(slice_positions(5, -100, 100, 2), (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(decode(std::string("a\xff")), U"a\uFFFD");
}

}  // namespace
}  // namespace lowbit::jinja::py
