// Added tokens (special tokens such as <|im_start|>, and user-added words), found in the text
// before normalization and BPE, as HF's AddedVocabulary does: leftmost-longest match, with
// the single_word, lstrip, rstrip and normalized flags.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
};

// A stretch of text: either an added token (id >= 0) or plain text (id == -1).
struct Segment {
  uint32_t begin, end;
  int32_t id;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `patterns[i]` is the string matched for `tokens[i]` (its content, or its normalized
  // content for normalized tokens).
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);

  bool empty() const { return tokens_.empty(); }
  // Cuts `text` into segments covering all of it (HF's find_matches). Appends to `out`.
  void split(std::string_view text, std::vector<Segment>& out) const;

 private:
  // Longest pattern starting at text[pos]: index into tokens_, or -1.
  int longest_at(std::string_view text, size_t pos, size_t* length) const;

  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t token = -1;
  };
  std::vector<AddedToken> tokens_;
  std::vector<Node> trie_;  // trie_[0] is the root
  bool first_byte_[256] = {};
  int single_first_byte_ = -1;  // the first byte of every pattern, if they all share one
};

}  // namespace lowbit
