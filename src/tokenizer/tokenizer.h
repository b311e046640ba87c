// A Hugging Face tokenizer.json byte-level BPE tokenizer that produces the same ids as the
// `tokenizers` library: added tokens are matched first (split_special_tokens=False), then
// normalizer, pre-tokenizer and BPE run on the text between them.
//
// Invalid UTF-8 input is first repaired the way Python's bytes.decode("utf-8",
// errors="replace") does (each maximal invalid subpart becomes U+FFFD), then tokenized.
// Components this implementation does not reproduce exactly (WordPiece, Metaspace, ...) make
// loading fail with an Error that names the component and the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

namespace detail {
struct TokenizerImpl;
}

class Tokenizer {
 public:
  // Reads dir/tokenizer.json, and dir/tokenizer_config.json when present (add_bos_token,
  // add_eos_token, bos/eos token strings).
  static Tokenizer from_dir(const std::filesystem::path& dir);
  // `label` names the source in error messages (usually the file path).
  static Tokenizer from_json(const nlohmann::json& tokenizer_json,
                             const nlohmann::json* tokenizer_config, std::string_view label);

  // add_special_tokens applies the post_processor (and add_bos_token/add_eos_token of
  // tokenizer_config.json when the post_processor does not already add those tokens).
  std::vector<int32_t> encode(std::string_view utf8, bool add_special_tokens = false) const;
  // Negative ids are an Error; ids past vocab_size() (a model's padding rows) decode as nothing;
  // skip_special_tokens drops special tokens.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  int32_t token_to_id(std::string_view token) const;  // -1 if absent
  std::string id_to_token(int32_t id) const;          // raw vocab string; Error if no such id
  size_t vocab_size() const;                          // including added tokens (max id + 1)
  bool is_special(int32_t id) const;
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;

  // Streaming decode for generation: push ids one at a time; each call returns the text that
  // is complete so far. An unfinished multi-byte character is held back until later bytes
  // complete it; flush() emits what is left, invalid bytes as U+FFFD. The concatenation of
  // all returned pieces equals decode() of all pushed ids.
  class StreamDecoder {
   public:
    explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);
    std::string push(int32_t id);
    std::string flush();

   private:
    std::shared_ptr<const detail::TokenizerImpl> impl_;
    bool skip_special_tokens_;
    size_t kept_ = 0;      // tokens decoded so far (for decoders that join with spaces)
    std::string pending_;  // bytes of an unfinished UTF-8 sequence
  };

 private:
  explicit Tokenizer(std::shared_ptr<const detail::TokenizerImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const detail::TokenizerImpl> impl_;
};

}  // namespace lowbit
