#include "tokenizer/added_tokens.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace lowbit {
namespace {

AddedToken token(int32_t id, std::string content) {
  AddedToken t;
  t.id = id;
  t.content = std::move(content);
  t.normalized = false;
  return t;
}

// Renders segments as "text|<id>|text" for compact expectations.
std::string render(const AddedTokenMatcher& m, std::string_view text) {
  std::vector<Segment> segments;
  m.split(text, segments);
  std::string out;
  size_t covered = 0;
  for (const Segment& s : segments) {
    if (!out.empty()) out += '|';
    std::string_view piece = text.substr(s.begin, s.end - s.begin);
    out += s.id >= 0 ? fmt::format("<{}:{}>", s.id, piece) : std::string(piece);
    EXPECT_EQ(s.begin, covered) << "segments must tile the text";
    covered = s.end;
  }
  EXPECT_EQ(covered, text.size());
  return out;
}

AddedTokenMatcher matcher(std::vector<AddedToken> tokens) {
  std::vector<std::string> patterns;
  for (const auto& t : tokens) patterns.push_back(t.content);
  return AddedTokenMatcher(std::move(tokens), std::move(patterns));
}

TEST(AddedTokens, LongestMatchAtTheLeftmostPosition) {
  auto m = matcher({token(1, "<|im"), token(2, "<|im_start|>"), token(3, "start")});
  EXPECT_EQ(render(m, "a<|im_start|>b"), "a|<2:<|im_start|>>|b");
  EXPECT_EQ(render(m, "a<|im_end|>"), "a|<1:<|im>|_end|>");
  EXPECT_EQ(render(m, "<|im_start|><|im_start|>"), "<2:<|im_start|>>|<2:<|im_start|>>");
  EXPECT_EQ(render(m, "restart"), "re|<3:start>");
  EXPECT_EQ(render(m, ""), "");
}

TEST(AddedTokens, SingleWordOnlyMatchesWholeWords) {
  AddedToken cat = token(7, "cat");
  cat.single_word = true;
  auto m = matcher({cat});
  EXPECT_EQ(render(m, "a cat!"), "a |<7:cat>|!");
  EXPECT_EQ(render(m, "concat category"), "concat category");
  EXPECT_EQ(render(m, "cat"), "<7:cat>");
  EXPECT_EQ(render(m, "caté cat_"), "caté cat_");  // é and _ are word characters
}

TEST(AddedTokens, StripFlagsTakeTheNeighbouringWhiteSpace) {
  AddedToken l = token(1, "<L>"), r = token(2, "<R>");
  l.lstrip = true;
  r.rstrip = true;
  auto m = matcher({l, r});
  EXPECT_EQ(render(m, "a  \t<L> b"), "a|<1:  \t<L>>| b");
  EXPECT_EQ(render(m, "a <R> \n b"), "a |<2:<R> \n >|b");
  // lstrip never reaches back into the previous token.
  EXPECT_EQ(render(m, "<R>  <L>x"), "<2:<R>  >|<1:<L>>|x");
  EXPECT_EQ(render(m, "x\u3000<L>"), "x|<1:\u3000<L>>");  // Unicode white space
}

TEST(AddedTokens, DiscardedMatchDoesNotRestartInsideItself) {
  // HF's matcher moves past a match that single_word rejects; "ab" inside it is not seen.
  AddedToken abc = token(1, "xab");
  abc.single_word = true;
  auto m = matcher({abc, token(2, "ab")});
  EXPECT_EQ(render(m, "zxab"), "zxab");
  EXPECT_EQ(render(m, "z ab"), "z |<2:ab>");
}

}  // namespace
}  // namespace lowbit
