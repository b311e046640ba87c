// Helpers shared by the tokenizer unit tests: small hand-made tokenizer.json documents and
// the location of the real Qwen3 tokenizer.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/byte_level.h"

namespace lowbit::testing {

// A byte-level BPE tokenizer.json whose vocab is the 256 byte characters (ids 0..255) plus
// `extra` tokens (ids 256...), with `merges` as [left, right] pairs in rank order.
inline nlohmann::json byte_level_tokenizer(
    const std::vector<std::string>& extra,
    const std::vector<std::pair<std::string, std::string>>& merges) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level::byte_to_string(uint8_t(b))] = b;
  int id = 256;
  for (const auto& t : extra) vocab[byte_level::encode(t)] = id++;
  nlohmann::json m = nlohmann::json::array();
  for (const auto& [l, r] : merges) m.push_back({byte_level::encode(l), byte_level::encode(r)});
  return {
      {"version", "1.0"},
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"vocab", vocab},
        {"merges", m}}},
  };
}

// The real Qwen3 tokenizer: $LOWBIT_QWEN3_TOKENIZER_DIR, else ../shared/data/qwen3-tokenizer
// next to the source tree. Empty if neither exists.
inline std::filesystem::path qwen3_dir() {
  std::vector<std::filesystem::path> candidates;
  if (const char* env = std::getenv("LOWBIT_QWEN3_TOKENIZER_DIR")) candidates.emplace_back(env);
  candidates.push_back(std::filesystem::path(LOWBIT_SOURCE_DIR) / ".." / "shared" / "data" /
                       "qwen3-tokenizer");
  for (const auto& c : candidates) {
    if (std::filesystem::exists(c / "tokenizer.json")) return c;
  }
  return {};
}

}  // namespace lowbit::testing
