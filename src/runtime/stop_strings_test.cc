#include "runtime/stop_strings.h"

#include <gtest/gtest.h>

namespace lowbit {
namespace {

TEST(StopStrings, HoldsBackPossiblePrefixAndCutsAtStop) {
  StopStrings s({"<END>", "\n\nUser:"});
  std::string out;
  out += s.push("Hello <");
  EXPECT_EQ(out, "Hello ");  // "<" could start "<END>"
  out += s.push("E");
  EXPECT_EQ(out, "Hello ");
  out += s.push("x");
  EXPECT_EQ(out, "Hello <Ex");
  out += s.push(" bye<EN");
  out += s.push("D> ignored");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(out, "Hello <Ex bye");
  EXPECT_EQ(s.text(), "Hello <Ex bye");
  EXPECT_EQ(s.push("more"), "");
}

TEST(StopStrings, StopSpanningManyPiecesAndFlush) {
  StopStrings s({"abc"});
  std::string out = s.push("xa");
  out += s.push("b");
  EXPECT_EQ(out, "x");
  out += s.flush();
  EXPECT_EQ(out, "xab");
  EXPECT_FALSE(s.stopped());
  StopStrings none({});
  EXPECT_EQ(none.push("anything"), "anything");
}

}  // namespace
}  // namespace lowbit
