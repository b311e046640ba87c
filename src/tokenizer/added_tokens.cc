#include "tokenizer/added_tokens.h"

#include <algorithm>
#include <cstring>

#include "tokenizer/unicode_data.h"
#include "tokenizer/utf8.h"

namespace lowbit {
namespace {

// HF tests these with Rust regexes \w and \s, whose Unicode classes match Oniguruma's.
bool ends_with_word(std::string_view s) {
  return !s.empty() && unicode::is_word(utf8::decode_before(s, s.size()));
}

bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  return unicode::is_word(utf8::decode(s, i));
}

// Start of the run of white space that ends `s`.
size_t trailing_space_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t i = end - 1;
    while (i > 0 && (uint8_t(s[i]) & 0xC0) == 0x80) --i;
    size_t j = i;
    if (!unicode::is_white_space(utf8::decode(s, j))) break;
    end = i;
  }
  return end;
}

// Length of the run of white space that starts `s`.
size_t leading_space_length(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!unicode::is_white_space(utf8::decode(s, j))) break;
    i = j;
  }
  return i;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens,
                                     std::vector<std::string> patterns)
    : tokens_(std::move(tokens)) {
  trie_.emplace_back();
  for (size_t t = 0; t < tokens_.size(); ++t) {
    const std::string& p = patterns[t];
    if (p.empty()) continue;
    first_byte_[uint8_t(p[0])] = true;
    int32_t node = 0;
    for (char c : p) {
      auto& ch = trie_[node].children;
      auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(uint8_t(c), INT32_MIN));
      if (it != ch.end() && it->first == uint8_t(c)) {
        node = it->second;
      } else {
        int32_t next = int32_t(trie_.size());
        ch.insert(it, {uint8_t(c), next});
        trie_.emplace_back();  // invalidates `ch`, which is no longer used
        node = next;
      }
    }
    // Two tokens with the same pattern: the later one wins, like a map insert.
    trie_[node].token = int32_t(t);
  }
  int distinct = 0;
  for (int b = 0; b < 256; ++b) {
    if (first_byte_[b]) ++distinct, single_first_byte_ = b;
  }
  if (distinct != 1) single_first_byte_ = -1;
}

int AddedTokenMatcher::longest_at(std::string_view text, size_t pos, size_t* length) const {
  int32_t node = 0, found = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto& ch = trie_[node].children;
    uint8_t c = uint8_t(text[i]);
    auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(c, INT32_MIN));
    if (it == ch.end() || it->first != c) break;
    node = it->second;
    if (trie_[node].token >= 0) found = trie_[node].token, *length = i + 1 - pos;
  }
  return found;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<Segment>& out) const {
  size_t n = text.size();
  if (tokens_.empty() || n == 0) {
    if (n > 0) out.push_back({0, uint32_t(n), -1});
    return;
  }
  size_t start_offset = 0;  // end of the previous accepted match
  size_t pos = 0;           // where the match search resumes
  while (pos < n) {
    if (single_first_byte_ >= 0) {  // usually every token starts with '<'
      const void* hit = std::memchr(text.data() + pos, single_first_byte_, n - pos);
      if (hit == nullptr) break;
      pos = size_t(static_cast<const char*>(hit) - text.data());
    } else if (!first_byte_[uint8_t(text[pos])]) {
      ++pos;
      continue;
    }
    size_t length = 0;
    int t = longest_at(text, pos, &length);
    if (t < 0) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + length;
    pos = stop;  // the search goes on after this match even if it is discarded
    const AddedToken& token = tokens_[t];
    if (token.single_word) {
      bool start_space = start == 0 || !ends_with_word(text.substr(0, start));
      bool stop_space = stop == n || !starts_with_word(text.substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (token.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
    if (token.rstrip) stop += leading_space_length(text.substr(stop));
    if (start_offset < start) out.push_back({uint32_t(start_offset), uint32_t(start), -1});
    out.push_back({uint32_t(start), uint32_t(stop), token.id});
    start_offset = stop;
  }
  if (start_offset != n) out.push_back({uint32_t(start_offset), uint32_t(n), -1});
}

}  // namespace lowbit
