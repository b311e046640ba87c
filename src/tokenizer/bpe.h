// The BPE model of tokenizer.json: vocabulary, ranked merges, and the merge loop, with the
// results HF's BPE gives (lowest rank first; among equal ranks, leftmost first).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/text_span.h"

namespace lowbit {

// (left id, right id) -> (rank, merged id), open addressing over one flat array.
class MergeTable {
 public:
  static constexpr uint64_t kNone = ~uint64_t{0};
  void reserve(size_t merges);
  // A later merge of the same pair replaces the earlier one, as in HF.
  void insert(int32_t left, int32_t right, uint32_t rank, int32_t merged);
  // (rank << 32 | merged id), or kNone. Packed so that comparing two values compares ranks.
  uint64_t find(int32_t left, int32_t right) const {
    uint64_t key = pack(left, right);
    for (size_t i = slot(key);; i = (i + 1) & mask_) {
      const Entry& e = entries_[i];
      if (e.key == key) return e.value;
      if (e.key == kNone) return kNone;
    }
  }
  size_t size() const { return size_; }

 private:
  struct Entry {
    uint64_t key = kNone;
    uint64_t value = kNone;
  };
  static uint64_t pack(int32_t a, int32_t b) { return uint64_t(uint32_t(a)) << 32 | uint32_t(b); }
  size_t slot(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> shift_); }
  std::vector<Entry> entries_;
  size_t mask_ = 0, size_ = 0;
  int shift_ = 64;
};

// Applies all merges to `ids` in place. Two algorithms with the same result: a scan for
// short words (the common case, no allocation) and a heap for long ones.
void merge_scan(const MergeTable& merges, std::vector<int32_t>& ids);
void merge_heap(const MergeTable& merges, std::vector<int32_t>& ids);

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class Bpe {
 public:
  // `model` is tokenizer.json's "model"; throws Error (naming `label`) unless it is a BPE
  // model this implementation reproduces exactly.
  static Bpe from_json(const nlohmann::json& model, std::string_view label);

  // Appends the ids of the pre-tokenized pieces of `text`. With `byte_level` the pieces are
  // raw bytes and each byte stands for its byte-level alphabet character.
  void encode(std::string_view text, std::span<const Span> pieces, bool byte_level,
              std::vector<int32_t>& out) const;

  int32_t token_to_id(std::string_view token) const;   // -1 if absent
  const std::string* id_to_token(int32_t id) const;    // nullptr if no token has this id
  size_t size() const { return id_to_token_.size(); }  // max id + 1
  size_t count() const { return vocab_->size(); }      // number of entries
  const MergeTable& merges() const { return *merges_; }

 private:
  class WordCache;
  WordCache& cache() const;
  void encode_word(std::string_view piece, bool byte_level, std::vector<int32_t>& ids) const;
  void initial_symbols(std::string_view piece, bool byte_level, std::vector<int32_t>& ids) const;
  void add_unknown(std::string_view ch, std::vector<int32_t>& ids, bool& pending_unk) const;

  std::shared_ptr<const Vocab> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_token_;
  std::shared_ptr<const MergeTable> merges_;
  int32_t byte_ids_[256];  // id of each byte's alphabet character, -1 if not in the vocab
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  uint64_t instance_id_ = 0;  // keys the per-thread word cache
};

}  // namespace lowbit
