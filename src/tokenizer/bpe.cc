#include "tokenizer/bpe.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <nlohmann/json.hpp>
#include <queue>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace lowbit {

void MergeTable::reserve(size_t merges) {
  size_t capacity = 16;
  while (capacity < merges * 2) capacity *= 2;  // load factor <= 0.5
  entries_.assign(capacity, Entry{});
  mask_ = capacity - 1;
  shift_ = 64 - __builtin_ctzll(capacity);
  size_ = 0;
}

void MergeTable::insert(int32_t left, int32_t right, uint32_t rank, int32_t merged) {
  if ((size_ + 1) * 2 > entries_.size()) {
    std::vector<Entry> old = std::move(entries_);
    reserve(std::max<size_t>(size_ + 1, old.size()));
    for (const Entry& e : old) {
      if (e.key != kNone)
        insert(int32_t(e.key >> 32), int32_t(uint32_t(e.key)), uint32_t(e.value >> 32),
               int32_t(uint32_t(e.value)));
    }
  }
  uint64_t key = pack(left, right);
  uint64_t value = uint64_t(rank) << 32 | uint32_t(merged);
  for (size_t i = slot(key);; i = (i + 1) & mask_) {
    Entry& e = entries_[i];
    if (e.key == key) {
      e.value = value;
      return;
    }
    if (e.key == kNone) {
      e = {key, value};
      ++size_;
      return;
    }
  }
}

void merge_scan(const MergeTable& merges, std::vector<int32_t>& ids) {
  // pair[i] is the merge of (ids[i], ids[i + 1]); merging i shifts everything after it left.
  thread_local std::vector<uint64_t> pair;
  size_t n = ids.size();
  if (n < 2) return;
  pair.resize(n - 1);
  for (size_t i = 0; i + 1 < n; ++i) pair[i] = merges.find(ids[i], ids[i + 1]);
  while (n > 1) {
    // Lowest rank; the strict comparison keeps the leftmost of equal ranks.
    size_t best = 0;
    uint64_t best_value = pair[0];
    for (size_t i = 1; i + 1 < n; ++i) {
      if ((pair[i] >> 32) < (best_value >> 32)) best_value = pair[i], best = i;
    }
    if (best_value == MergeTable::kNone) break;
    ids[best] = int32_t(uint32_t(best_value));
    std::copy(ids.begin() + best + 2, ids.begin() + n, ids.begin() + best + 1);
    std::copy(pair.begin() + best + 1, pair.begin() + (n - 1), pair.begin() + best);
    --n;
    if (best > 0) pair[best - 1] = merges.find(ids[best - 1], ids[best]);
    if (best + 1 < n) pair[best] = merges.find(ids[best], ids[best + 1]);
  }
  ids.resize(n);
}

void merge_heap(const MergeTable& merges, std::vector<int32_t>& ids) {
  // HF's Word::merge_all: a heap of (rank, position), symbols in a linked list; entries
  // that no longer describe the pair at their position are skipped when popped.
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  struct Candidate {
    uint64_t value;  // rank << 32 | merged id
    uint32_t pos;
    bool operator>(const Candidate& o) const {
      uint32_t r = uint32_t(value >> 32), ro = uint32_t(o.value >> 32);
      return r != ro ? r > ro : pos > o.pos;
    }
  };
  size_t n = ids.size();
  if (n < 2) return;
  std::vector<Symbol> sym(n);
  for (size_t i = 0; i < n; ++i) {
    sym[i] = {ids[i], int32_t(i) - 1, i + 1 < n ? int32_t(i + 1) : -1, true};
  }
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  for (size_t i = 0; i + 1 < n; ++i) {
    uint64_t v = merges.find(ids[i], ids[i + 1]);
    if (v != MergeTable::kNone) heap.push({v, uint32_t(i)});
  }
  while (!heap.empty()) {
    Candidate top = heap.top();
    heap.pop();
    Symbol& s = sym[top.pos];
    if (!s.alive || s.next < 0) continue;
    Symbol& right = sym[s.next];
    uint64_t now = merges.find(s.id, right.id);
    if (now == MergeTable::kNone || uint32_t(now) != uint32_t(top.value)) continue;
    s.id = int32_t(uint32_t(top.value));
    right.alive = false;
    s.next = right.next;
    if (s.next >= 0) sym[s.next].prev = int32_t(top.pos);
    if (s.prev >= 0) {
      uint64_t v = merges.find(sym[s.prev].id, s.id);
      if (v != MergeTable::kNone) heap.push({v, uint32_t(s.prev)});
    }
    if (s.next >= 0) {
      uint64_t v = merges.find(s.id, sym[s.next].id);
      if (v != MergeTable::kNone) heap.push({v, top.pos});
    }
  }
  size_t k = 0;
  for (size_t i = 0; i < n; ++i) {
    if (sym[i].alive) ids[k++] = sym[i].id;
  }
  ids.resize(k);
}

namespace {

std::atomic<uint64_t> next_instance_id{1};

// Words longer than this (in symbols) use the heap; shorter ones the quadratic scan.
constexpr size_t kScanLimit = 48;
// Pieces longer than this (bytes) are not cached, as in HF.
constexpr size_t kMaxCachedBytes = 256;
constexpr size_t kCacheCapacity = 1 << 16;

}  // namespace

// Per-thread cache of piece -> ids, so that encode() needs no lock: open addressing over
// flat arrays, cleared when full.
class Bpe::WordCache {
 public:
  WordCache() : slots_(2 * kCacheCapacity) {}

  static uint64_t hash(std::string_view s) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      h = (h ^ w) * 0xFF51AFD7ED558CCDull;
      h ^= h >> 32;
    }
    uint64_t w = 0;
    std::memcpy(&w, s.data() + i, s.size() - i);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    return h ^ (h >> 29);
  }

  // Appends the cached ids of `key` to `out`; false if absent.
  bool find(std::string_view key, uint64_t h, std::vector<int32_t>& out) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.count == 0) return false;
      if (s.hash == h && s.key_len == key.size() &&
          std::memcmp(keys_.data() + s.key_offset, key.data(), key.size()) == 0) {
        out.insert(out.end(), ids_.begin() + s.ids_offset, ids_.begin() + s.ids_offset + s.count);
        return true;
      }
    }
  }

  void insert(std::string_view key, uint64_t h, std::span<const int32_t> ids) {
    if (ids.empty() || ids.size() > 0xFFFF) return;
    if (used_ >= kCacheCapacity) {
      std::fill(slots_.begin(), slots_.end(), Slot{});
      keys_.clear();
      ids_.clear();
      used_ = 0;
    }
    size_t mask = slots_.size() - 1;
    size_t i = h & mask;
    while (slots_[i].count != 0) i = (i + 1) & mask;
    slots_[i] = {h, uint32_t(keys_.size()), uint32_t(ids_.size()), uint16_t(key.size()),
                 uint16_t(ids.size())};
    keys_.append(key);
    ids_.insert(ids_.end(), ids.begin(), ids.end());
    ++used_;
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_offset = 0, ids_offset = 0;
    uint16_t key_len = 0, count = 0;  // count == 0: empty slot
  };
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<int32_t> ids_;
  size_t used_ = 0;
};

Bpe::WordCache& Bpe::cache() const {
  // A thread keeps caches for its few most recently used models.
  struct Entry {
    uint64_t id;
    std::unique_ptr<WordCache> cache;
  };
  thread_local std::vector<Entry> caches;
  for (size_t i = 0; i < caches.size(); ++i) {
    if (caches[i].id == instance_id_) {
      if (i != 0) std::swap(caches[i], caches[0]);
      return *caches[0].cache;
    }
  }
  if (caches.size() >= 4) caches.pop_back();
  caches.insert(caches.begin(), Entry{instance_id_, std::make_unique<WordCache>()});
  return *caches[0].cache;
}

Bpe Bpe::from_json(const nlohmann::json& model, std::string_view label) {
  std::string type = model.value("type", std::string("BPE"));
  if (type != "BPE") {
    fail("{}: model type '{}' is not supported (only BPE)", label, type);
  }
  auto optional_string = [&](const char* key) {
    auto it = model.find(key);
    return (it == model.end() || it->is_null()) ? std::string() : it->get<std::string>();
  };
  if (!optional_string("continuing_subword_prefix").empty() ||
      !optional_string("end_of_word_suffix").empty()) {
    fail("{}: BPE continuing_subword_prefix / end_of_word_suffix are not supported", label);
  }
  if (auto it = model.find("dropout");
      it != model.end() && !it->is_null() && it->get<double>() != 0.0) {
    fail("{}: BPE dropout {} is random and cannot be reproduced", label, it->get<double>());
  }

  Bpe bpe;
  bpe.instance_id_ = next_instance_id.fetch_add(1);
  auto vocab = std::make_shared<Vocab>();
  const auto& vocab_json = model.at("vocab");
  vocab->reserve(vocab_json.size());
  int32_t max_id = -1;
  for (auto it = vocab_json.begin(); it != vocab_json.end(); ++it) {
    int32_t id = it.value().get<int32_t>();
    if (id < 0) fail("{}: vocab entry '{}' has negative id {}", label, it.key(), id);
    (*vocab)[it.key()] = id;
    max_id = std::max(max_id, id);
  }
  bpe.id_to_token_.resize(size_t(max_id + 1));
  bpe.has_token_.assign(size_t(max_id + 1), false);
  for (const auto& [token, id] : *vocab) {
    bpe.id_to_token_[id] = token;
    bpe.has_token_[id] = true;
  }

  const auto& merges_json = model.at("merges");
  auto merges = std::make_shared<MergeTable>();
  merges->reserve(merges_json.size());
  auto lookup = [&](const std::string& token) {
    auto it = vocab->find(token);
    if (it == vocab->end()) fail("{}: merge token '{}' is not in the vocab", label, token);
    return it->second;
  };
  uint32_t rank = 0;
  for (const auto& m : merges_json) {
    std::string left, right;
    if (m.is_string()) {  // legacy "a b"
      const std::string& s = m.get_ref<const std::string&>();
      size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        fail("{}: merge '{}' is not two tokens separated by one space", label, s);
      }
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      fail("{}: merge {} is neither \"a b\" nor [a, b]", label, m.dump());
    }
    merges->insert(lookup(left), lookup(right), rank++, lookup(left + right));
  }

  for (int b = 0; b < 256; ++b) {
    auto it = vocab->find(byte_level::byte_to_string(uint8_t(b)));
    bpe.byte_ids_[b] = it == vocab->end() ? -1 : it->second;
  }
  if (std::string unk = optional_string("unk_token"); !unk.empty()) {
    auto it = vocab->find(unk);
    if (it == vocab->end()) fail("{}: unk_token '{}' is not in the vocab", label, unk);
    bpe.unk_id_ = it->second;
  }
  bpe.fuse_unk_ = model.value("fuse_unk", false);
  bpe.byte_fallback_ = model.value("byte_fallback", false);
  bpe.ignore_merges_ = model.value("ignore_merges", false);
  bpe.vocab_ = std::move(vocab);
  bpe.merges_ = std::move(merges);
  return bpe;
}

int32_t Bpe::token_to_id(std::string_view token) const {
  auto it = vocab_->find(token);
  return it == vocab_->end() ? -1 : it->second;
}

const std::string* Bpe::id_to_token(int32_t id) const {
  if (id < 0 || size_t(id) >= id_to_token_.size() || !has_token_[id]) return nullptr;
  return &id_to_token_[id];
}

// A character missing from the vocab: byte fallback tokens, else the (possibly fused) unk
// token, else nothing, in the order HF's merge_word emits them.
void Bpe::add_unknown(std::string_view ch, std::vector<int32_t>& ids, bool& pending_unk) const {
  if (byte_fallback_) {
    int32_t fallback[4];
    bool all = ch.size() <= 4;
    for (size_t k = 0; all && k < ch.size(); ++k) {
      fallback[k] = token_to_id(fmt::format("<0x{:02X}>", uint8_t(ch[k])));
      all = fallback[k] >= 0;
    }
    if (all) {
      ids.insert(ids.end(), fallback, fallback + ch.size());
      return;
    }
  }
  if (unk_id_ < 0) return;
  if (pending_unk && !fuse_unk_) ids.push_back(unk_id_);
  pending_unk = true;
}

void Bpe::initial_symbols(std::string_view piece, bool byte_level,
                          std::vector<int32_t>& ids) const {
  bool pending_unk = false;
  auto known = [&](int32_t id) {
    if (pending_unk) ids.push_back(unk_id_), pending_unk = false;
    ids.push_back(id);
  };
  if (byte_level) {
    for (char c : piece) {
      int32_t id = byte_ids_[uint8_t(c)];
      if (id >= 0) {
        known(id);
      } else {
        add_unknown(byte_level::byte_to_string(uint8_t(c)), ids, pending_unk);
      }
    }
  } else {
    for (size_t i = 0; i < piece.size();) {
      size_t start = i;
      utf8::decode(piece, i);
      std::string_view ch = piece.substr(start, i - start);
      int32_t id = token_to_id(ch);
      if (id >= 0) {
        known(id);
      } else {
        add_unknown(ch, ids, pending_unk);
      }
    }
  }
  if (pending_unk) ids.push_back(unk_id_);
}

void Bpe::encode_word(std::string_view piece, bool byte_level, std::vector<int32_t>& ids) const {
  int32_t whole = -1;
  if (ignore_merges_) {
    whole = byte_level ? token_to_id(byte_level::encode(piece)) : token_to_id(piece);
  }
  if (whole >= 0) {
    ids.push_back(whole);
    return;
  }
  initial_symbols(piece, byte_level, ids);
  if (ids.size() <= kScanLimit) {
    merge_scan(*merges_, ids);
  } else {
    merge_heap(*merges_, ids);
  }
}

void Bpe::encode(std::string_view text, std::span<const Span> pieces, bool byte_level,
                 std::vector<int32_t>& out) const {
  WordCache& wc = cache();
  thread_local std::vector<int32_t> ids;
  for (Span span : pieces) {
    std::string_view piece = text.substr(span.begin, span.end - span.begin);
    if (piece.empty()) continue;
    bool cacheable = piece.size() <= kMaxCachedBytes;
    uint64_t h = 0;
    if (cacheable) {
      h = WordCache::hash(piece);
      if (wc.find(piece, h, out)) continue;
    }
    ids.clear();
    encode_word(piece, byte_level, ids);
    out.insert(out.end(), ids.begin(), ids.end());
    if (cacheable) wc.insert(piece, h, ids);
  }
}

}  // namespace lowbit
