#include "tokenizer/pre_tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/regex.h"

namespace lowbit {
namespace {

using nlohmann::json;

std::vector<std::string> run(const json& spec, std::string_view text) {
  PreTokenizer p = PreTokenizer::from_json(spec, "test");
  std::string storage;
  std::vector<Span> pieces;
  std::string_view view = p.run(text, storage, pieces);
  std::vector<std::string> out;
  for (Span s : pieces) out.emplace_back(view.substr(s.begin, s.end - s.begin));
  return out;
}

json split(const std::string& behavior, bool invert = false) {
  return {{"type", "Split"},
          {"pattern", {{"String", "-"}}},
          {"behavior", behavior},
          {"invert", invert}};
}

using V = std::vector<std::string>;

// The examples of HF's SplitDelimiterBehavior documentation.
TEST(PreTokenizer, SplitBehaviours) {
  const char* text = "the-final--countdown";
  EXPECT_EQ(run(split("Removed"), text), V({"the", "final", "countdown"}));
  EXPECT_EQ(run(split("Isolated"), text), V({"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(run(split("MergedWithPrevious"), text), V({"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(run(split("MergedWithNext"), text), V({"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(run(split("Contiguous"), text), V({"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(run(split("Removed", true), text), V({"-", "-", "-"}));
}

TEST(PreTokenizer, ByteLevelGpt2PatternAndPrefixSpace) {
  json bl = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  EXPECT_EQ(run(bl, "Hello my friend, how's it?  ok"),
            V({"Hello", " my", " friend", ",", " how", "'s", " it", "?", " ", " ok"}));
  bl["add_prefix_space"] = true;
  EXPECT_EQ(run(bl, "Hello  world"), V({" Hello", " ", " world"}));
  EXPECT_EQ(run(bl, " x"), V({" x"}));  // already starts with a space
}

TEST(PreTokenizer, SequenceSplitsEachPieceIndependently) {
  json seq = {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Digits"}, {"individual_digits", true}},
                {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}};
  EXPECT_EQ(run(seq, "ab 123 ٣"), V({"ab", " ", "1", "2", "3", " ", "٣"}));
  json contiguous = {{"type", "Digits"}, {"individual_digits", false}};
  EXPECT_EQ(run(contiguous, "a12b3"), V({"a", "12", "b", "3"}));
}

TEST(PreTokenizer, UnsupportedTypesAreErrors) {
  try {
    run({{"type", "Metaspace"}, {"replacement", "▁"}}, "x");
    FAIL() << "Metaspace accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Metaspace"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("test"), std::string::npos) << e.what();
  }
  json after = {{"type", "Sequence"},
                {"pretokenizers", {{{"type", "ByteLevel"}}, {{"type", "Digits"}}}}};
  EXPECT_THROW(run(after, "x"), Error);
}

TEST(Regex, OnigurumaTranslation) {
  EXPECT_EQ(translate_oniguruma("a^b$"), "a(?m:^)b(?m:$)");
  EXPECT_EQ(translate_oniguruma(R"(\h)"), "[0-9a-fA-F]");
  EXPECT_EQ(translate_oniguruma(R"(\u00e9)"), R"(\x{00e9})");
  EXPECT_NE(translate_oniguruma(R"([^\s\p{L}])").find(R"(\x{41}-\x{5A})"), std::string::npos);
  EXPECT_THROW(translate_oniguruma("[a[b]]"), Error);
  EXPECT_THROW(translate_oniguruma("[a&&b]"), Error);
}

std::vector<std::string> matches(std::string_view pattern, std::string_view text) {
  Regex r = Regex::from_oniguruma(pattern, "test");
  std::vector<RegexMatch> ms;
  r.find_all(text, ms);
  std::vector<std::string> out;
  for (auto m : ms) out.emplace_back(text.substr(m.begin, m.end - m.begin));
  return out;
}

TEST(Regex, UnicodeClassesFollowOniguruma) {
  // U+10D50 (Garay, Unicode 16) is a letter for Oniguruma; U+180E is not white space.
  EXPECT_EQ(matches(R"(\p{L}+)", "a\U00010D50b 1"), V({"a\U00010D50b"}));
  EXPECT_EQ(matches(R"(\s+)", "a\u180Eb\u00A0\u0085c"), V({"\u00A0\u0085"}));
  EXPECT_EQ(matches(R"((?i:'s))", "'S 'ſ"), V({"'S", "'ſ"}));
  EXPECT_EQ(matches("^a", "a\na"), V({"a", "a"}));
  // Empty matches: never right after the previous match.
  EXPECT_EQ(matches("x*", "axxb"), V({"", "xx", ""}));
}

}  // namespace
}  // namespace lowbit
