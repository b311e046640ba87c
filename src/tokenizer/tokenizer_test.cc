#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <thread>

#include "core/error.h"
#include "tokenizer/test_util.h"
#include "tokenizer/utf8.h"

namespace lowbit {
namespace {

using nlohmann::json;

// Loading must fail with an Error that names the component and the file.
void expect_rejected(const json& j, const std::string& component) {
  try {
    Tokenizer::from_json(j, nullptr, "/models/x/tokenizer.json");
    FAIL() << component << " was accepted";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(component), std::string::npos) << what;
    EXPECT_NE(what.find("/models/x/tokenizer.json"), std::string::npos) << what;
  }
}

TEST(Tokenizer, UnsupportedComponentsAreErrors) {
  json base = testing::byte_level_tokenizer({}, {});
  json j = base;
  j["model"] = {{"type", "WordPiece"}, {"vocab", {{"a", 0}}}};
  expect_rejected(j, "WordPiece");
  j = base;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}};
  expect_rejected(j, "Metaspace");
  j = base;
  j["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", ""}};
  expect_rejected(j, "Precompiled");
  j = base;
  j["decoder"] = {{"type", "WordPiece"}};
  expect_rejected(j, "WordPiece");
  j = base;
  j["post_processor"] = {{"type", "Mystery"}};
  expect_rejected(j, "Mystery");
  j = base;
  j["model"]["dropout"] = 0.1;
  expect_rejected(j, "dropout");
  j = base;
  j["pre_tokenizer"] = {{"type", "Split"},
                        {"pattern", {{"Regex", "[a&&b]"}}},
                        {"behavior", "Isolated"},
                        {"invert", false}};
  expect_rejected(j, "&&");
}

TEST(Tokenizer, InvalidUtf8IsRepairedBeforeTokenizing) {
  Tokenizer t = Tokenizer::from_json(testing::byte_level_tokenizer({}, {}), nullptr, "tiny");
  EXPECT_EQ(t.encode("a\xE4\xB8"
                     "b"),
            t.encode("a\xEF\xBF\xBD"
                     "b"));
  EXPECT_EQ(t.decode(t.encode("a\xFF")), "a\xEF\xBF\xBD");
}

TEST(Tokenizer, AddedTokensSpecialFlagsAndPostProcessor) {
  json j = testing::byte_level_tokenizer({}, {});
  j["added_tokens"] = {
      {{"id", 256}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
      {{"id", 257}, {"content", "<x>"}, {"special", false}, {"normalized", false}}};
  j["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single",
       {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {256}}, {"tokens", {"<s>"}}}}}}};
  json config = {{"bos_token", "<s>"}, {"eos_token", {{"content", "<x>"}}}};
  Tokenizer t = Tokenizer::from_json(j, &config, "tiny");
  EXPECT_EQ(t.encode("a<s>"), std::vector<int32_t>({'a', 256}));
  EXPECT_EQ(t.encode("a", true), std::vector<int32_t>({256, 'a'}));
  EXPECT_EQ(t.vocab_size(), 258u);
  EXPECT_TRUE(t.is_special(256));
  EXPECT_FALSE(t.is_special(257));
  EXPECT_EQ(t.bos_id(), 256);
  EXPECT_EQ(t.eos_id(), 257);
  EXPECT_EQ(t.token_to_id("<x>"), 257);
  EXPECT_EQ(t.token_to_id("nope"), -1);
  std::vector<int32_t> ids = {256, 'h', 'i', 257};
  EXPECT_EQ(t.decode(ids), "<s>hi<x>");
  EXPECT_EQ(t.decode(ids, true), "hi<x>");
  EXPECT_THROW(t.id_to_token(258), Error);
  EXPECT_THROW(t.decode(std::vector<int32_t>({-1})), Error);
}

// Feeds `ids` one by one: every piece must be valid UTF-8 and the pieces must add up to
// the full decode.
void expect_stream_matches(const Tokenizer& t, const std::vector<int32_t>& ids) {
  Tokenizer::StreamDecoder stream(t);
  std::string joined;
  for (int32_t id : ids) {
    std::string piece = stream.push(id);
    EXPECT_TRUE(utf8::is_valid(piece)) << "piece after id " << id;
    joined += piece;
  }
  std::string rest = stream.flush();
  EXPECT_TRUE(utf8::is_valid(rest));
  joined += rest;
  EXPECT_EQ(joined, t.decode(ids));
}

const char* kMultiByte = "漢字かな 한국어 😀👨‍👩‍👧 e\xCC\x81 𝔘𝔫𝔦";

TEST(StreamDecoder, NeverEmitsHalfACharacter) {
  // One token per byte: every multi-byte character arrives in pieces.
  Tokenizer t = Tokenizer::from_json(testing::byte_level_tokenizer({}, {}), nullptr, "tiny");
  std::vector<int32_t> ids = t.encode(kMultiByte);
  ASSERT_GT(ids.size(), 40u);
  Tokenizer::StreamDecoder stream(t);
  EXPECT_EQ(stream.push(ids[0]), "");  // first byte of 漢 alone is held back
  expect_stream_matches(t, ids);
  // Truncated and invalid sequences come out as U+FFFD, like the full decode.
  expect_stream_matches(t, {0xE4, 0xB8, 'a', 0xF0, 0x9F, 0x98, 0xFF, 0xE4});
}

TEST(StreamDecoder, Qwen3) {
  auto dir = testing::qwen3_dir();
  if (dir.empty()) GTEST_SKIP() << "Qwen3 tokenizer not found (set LOWBIT_QWEN3_TOKENIZER_DIR)";
  Tokenizer t = Tokenizer::from_dir(dir);
  std::vector<int32_t> ids = t.encode(kMultiByte);
  expect_stream_matches(t, ids);
  expect_stream_matches(t, t.encode(std::string("<|im_start|>") + kMultiByte + "<|im_end|>"));
}

TEST(Tokenizer, ConcurrentEncodesAgree) {
  // Caches and scratch buffers are per thread; one Tokenizer serves many threads.
  json j =
      testing::byte_level_tokenizer({"ab", "abc", " a"}, {{"a", "b"}, {"ab", "c"}, {" ", "a"}});
  Tokenizer t = Tokenizer::from_json(j, nullptr, "tiny");
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "abc ab a" + std::to_string(i) + " ";
  std::vector<int32_t> expected = t.encode(text);
  std::vector<std::vector<int32_t>> got(4);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int r = 0; r < 5; ++r) got[k] = t.encode(text);
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& g : got) EXPECT_EQ(g, expected);
}

TEST(Tokenizer, Qwen3Basics) {
  auto dir = testing::qwen3_dir();
  if (dir.empty()) GTEST_SKIP() << "Qwen3 tokenizer not found (set LOWBIT_QWEN3_TOKENIZER_DIR)";
  Tokenizer t = Tokenizer::from_dir(dir);
  // Reference ids from HF tokenizers 0.23.3.
  EXPECT_EQ(t.encode("Hello world! <|im_start|>user\nI'LL test 12345"),
            std::vector<int32_t>({9707, 1879, 0, 220, 151644, 872, 198, 40, 6, 4086, 1273, 220, 16,
                                  17, 18, 19, 20}));
  EXPECT_EQ(t.vocab_size(), 151669u);
  EXPECT_EQ(t.eos_id(), 151645);
  EXPECT_FALSE(t.bos_id().has_value());
  EXPECT_TRUE(t.is_special(151643));
  EXPECT_FALSE(t.is_special(151667));  // <think> is added but not special
  EXPECT_EQ(t.id_to_token(9707), "Hello");
  EXPECT_EQ(t.id_to_token(151644), "<|im_start|>");
  EXPECT_EQ(t.token_to_id("Ġworld"), 1879);
  EXPECT_EQ(t.decode(t.encode("héllo <think>x</think>")), "héllo <think>x</think>");
  EXPECT_TRUE(t.encode("").empty());
  // Qwen3's embedding has 151936 rows: ids past the tokenizer decode as nothing (as in
  // transformers and vLLM), in one-shot and streaming decode; negative ids are an error.
  EXPECT_EQ(t.decode(std::vector<int32_t>{9707, 151814, 1879, 151935}), "Hello world");
  Tokenizer::StreamDecoder sd(t);
  std::string streamed;
  for (int32_t id : {9707, 151814, 1879}) streamed += sd.push(id);
  streamed += sd.flush();
  EXPECT_EQ(streamed, "Hello world");
  EXPECT_THROW(t.decode(std::vector<int32_t>{-1}), Error);
}

}  // namespace
}  // namespace lowbit
