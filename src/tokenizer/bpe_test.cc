#include "tokenizer/bpe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>

#include "core/error.h"
#include "tokenizer/test_util.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {
namespace {

using nlohmann::json;

std::vector<std::string> tokens_of(const Tokenizer& t, std::string_view text) {
  std::vector<std::string> out;
  for (int32_t id : t.encode(text)) out.push_back(t.id_to_token(id));
  return out;
}

TEST(Bpe, AppliesMergesByRankNotByPosition) {
  // "abc": (b,c) has the better rank, so "a" + "bc" even though (a,b) comes first.
  json j =
      testing::byte_level_tokenizer({"ab", "bc", "abc"}, {{"b", "c"}, {"a", "b"}, {"a", "bc"}});
  Tokenizer t = Tokenizer::from_json(j, nullptr, "tiny");
  EXPECT_EQ(tokens_of(t, "abc"), std::vector<std::string>({"abc"}));
  EXPECT_EQ(tokens_of(t, "ab"), std::vector<std::string>({"ab"}));
  EXPECT_EQ(tokens_of(t, "abab"), std::vector<std::string>({"ab", "ab"}));
  // No ("ab","c") merge: "ab" then "c" would stay apart, but (b,c) wins first.
  EXPECT_EQ(tokens_of(t, "xbca"), std::vector<std::string>({"x", "bc", "a"}));
}

TEST(Bpe, EqualPairsMergeLeftmostFirst) {
  json j = testing::byte_level_tokenizer({"aa", "aaa"}, {{"a", "a"}, {"aa", "a"}});
  Tokenizer t = Tokenizer::from_json(j, nullptr, "tiny");
  EXPECT_EQ(tokens_of(t, "aaa"), std::vector<std::string>({"aaa"}));
  EXPECT_EQ(tokens_of(t, "aaaaa"), std::vector<std::string>({"aa", "aaa"}));
}

TEST(Bpe, LegacyStringMergesGiveTheSameResult) {
  json pairs = testing::byte_level_tokenizer({"he", "ll", "hell", "o"},
                                             {{"h", "e"}, {"l", "l"}, {"he", "ll"}});
  json strings = pairs;
  strings["model"]["merges"] = {"h e", "l l", "he ll"};
  Tokenizer a = Tokenizer::from_json(pairs, nullptr, "pairs");
  Tokenizer b = Tokenizer::from_json(strings, nullptr, "strings");
  EXPECT_EQ(a.encode("hello hell"), b.encode("hello hell"));
  EXPECT_EQ(tokens_of(a, "hello"), std::vector<std::string>({"hell", "o"}));
}

TEST(Bpe, IgnoreMergesTakesWholeWordsFromTheVocab) {
  // "abc" is in the vocab but no merge path reaches it.
  json j = testing::byte_level_tokenizer({"ab", "abc"}, {{"a", "b"}});
  EXPECT_EQ(tokens_of(Tokenizer::from_json(j, nullptr, "t"), "abc"),
            std::vector<std::string>({"ab", "c"}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(tokens_of(Tokenizer::from_json(j, nullptr, "t"), "abc"),
            std::vector<std::string>({"abc"}));
}

TEST(Bpe, BadMergesAreErrors) {
  json j = testing::byte_level_tokenizer({}, {{"a", "b"}});  // "ab" is not in the vocab
  EXPECT_THROW(Tokenizer::from_json(j, nullptr, "t"), Error);
  j["model"]["merges"] = {"a b c"};
  EXPECT_THROW(Tokenizer::from_json(j, nullptr, "t"), Error);
}

// The scan (short words) and heap (long words) merge loops must agree. Tokens are strings
// over a 4-letter alphabet and a merge makes the concatenation, as in a real vocabulary.
TEST(Bpe, ScanAndHeapAgreeOnRandomWords) {
  std::mt19937 rng(5);
  for (int round = 0; round < 20; ++round) {
    std::vector<std::string> tokens = {"a", "b", "c", "d"};
    std::map<std::string, int32_t> id_of = {{"a", 0}, {"b", 1}, {"c", 2}, {"d", 3}};
    MergeTable merges;
    merges.reserve(300);
    std::vector<uint32_t> ranks(300);
    std::iota(ranks.begin(), ranks.end(), 0u);
    std::shuffle(ranks.begin(), ranks.end(), rng);
    for (int m = 0; m < 300; ++m) {
      int32_t l = int32_t(rng() % tokens.size()), r = int32_t(rng() % tokens.size());
      std::string joined = tokens[l] + tokens[r];
      if (joined.size() > 6) continue;
      auto [it, added] = id_of.emplace(joined, int32_t(tokens.size()));
      if (added) tokens.push_back(joined);
      merges.insert(l, r, ranks[m], it->second);
    }
    for (int w = 0; w < 300; ++w) {
      std::vector<int32_t> word(1 + rng() % 100);
      for (auto& id : word) id = int32_t(rng() % 4);
      std::vector<int32_t> a = word, b = word;
      merge_scan(merges, a);
      merge_heap(merges, b);
      ASSERT_EQ(a, b) << "round " << round << " word " << w;
    }
  }
}

}  // namespace
}  // namespace lowbit
