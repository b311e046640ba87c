// Prefix cache over whole KV pages, shared between requests: a radix tree whose edges are runs
// of page_size-token blocks (compressed paths, split where sequences diverge), in the manner of
// SGLang's RadixCache with page_size > 1. A request whose prompt starts with a cached prefix
// takes those pages instead of recomputing them.
//
// Ownership: the cache holds one reference (runtime/kv_pages) on every page it stores; requests
// hold their own. A cached page can be evicted when only the cache references it (count 1) and
// the same holds for every cached page below it. Eviction drops least-recently-used leaves, and
// a parent whose last child went becomes a leaf in turn; a leaf whose front pages are still in
// use (possible when a request re-inserts pages it shares with others, e.g. after clear()) loses
// just its unused tail, so no unreferenced page is ever stranded. The cache watches its pages'
// counts (PageWatcher), so it knows at every moment what is evictable without scanning.
//
// Cost: match/insert are O(tokens) (one hash and one compare per block; a child is found by a
// hash map keyed on its first block), evict is O(k log n) for k leaves dropped.
//
// Not thread-safe: the engine thread owns it. The PageAllocator must outlive the cache, and no
// other watcher may be installed on it.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <unordered_map>
#include <vector>

#include "runtime/kv_pages.h"

namespace lowbit {

class RadixCache : private PageWatcher {
 public:
  RadixCache(PageAllocator& pages, int64_t page_size);
  ~RadixCache();  // clear()
  RadixCache(const RadixCache&) = delete;
  RadixCache& operator=(const RadixCache&) = delete;

  // Longest cached prefix of `tokens` in whole pages (a partial last page never matches).
  // Appends its pages to `out`, taking one reference on each for the caller, marks the path
  // most recently used, and returns the number of tokens matched (a multiple of page_size).
  // A caller that needs logits for the last prompt token should match all but that token.
  int64_t match(std::span<const int32_t> tokens, std::vector<int32_t>& out);

  // Stores the first floor(tokens.size()/page_size) pages of a sequence (pages[i] holds tokens
  // [i*page_size, (i+1)*page_size); pages may be longer, e.g. with a partial last page, and the
  // extra entries are ignored). Where a prefix is already cached, the existing pages stay and
  // the caller's duplicates are not taken (the caller may drop its own copies and match() to
  // use the cached ones); new pages get one cache reference, so the caller must still hold
  // them. Marks the path most recently used. Returns the number of leading pages that were
  // already cached.
  int64_t insert(std::span<const int32_t> tokens, std::span<const int32_t> pages);

  // Frees at least n pages if possible by dropping least-recently-used leaves whose pages only
  // the cache references (ref_count == 1); returns how many pages were freed (a leaf goes as a
  // whole, so this may exceed n).
  int64_t evict(int64_t n);

  int64_t cached_pages() const { return cached_pages_; }        // pages holding a cache ref
  int64_t evictable_pages() const { return evictable_pages_; }  // of those, freeable by evict()
  void clear();  // drops every cache reference (pages held by requests stay in use)

  // Hit statistics for /metrics: tokens asked for in match() and tokens matched.
  int64_t queried_tokens() const { return queried_tokens_; }
  int64_t hit_tokens() const { return hit_tokens_; }

  int64_t page_size() const { return page_size_; }
  int64_t node_count() const { return node_count_; }  // edges in the tree (for tests, stats)
  // Recomputes every derived count from scratch and fails (LOWBIT_CHECK) on a mismatch.
  // O(cached pages); for tests.
  void check_invariants() const;

 private:
  // Children are found by the tokens of their first block; lookups take a span, no copy.
  struct BlockHash {
    using is_transparent = void;
    size_t operator()(std::span<const int32_t> block) const;
  };
  struct BlockEqual {
    using is_transparent = void;
    bool operator()(std::span<const int32_t> a, std::span<const int32_t> b) const;
  };
  struct Node;
  using Children = std::unordered_map<std::vector<int32_t>, std::unique_ptr<Node>, BlockHash,
                                      BlockEqual>;
  struct Node {
    uint64_t id = 0;
    Node* parent = nullptr;
    std::vector<int32_t> tokens;  // the edge from parent: pages.size() * page_size tokens
    std::vector<int32_t> pages;
    Children children;
    uint64_t last_access = 0;
    // Index of the last own page that someone besides the cache references, -1 if none: the
    // pages after it are the node's evictable tail.
    int64_t last_shared = -1;
    int64_t blocked_children = 0;  // children whose subtree is not entirely evictable
    // What this node currently contributes to the aggregates (see refresh()).
    bool counted_free = false;     // subtree entirely evictable
    int64_t counted_pages = 0;     // pages counted in evictable_pages_
    bool in_lru = false;           // a leaf with an evictable tail, present in lru_
  };
  struct LruKey {
    uint64_t last_access, id;
    Node* node;
    bool operator<(const LruKey& o) const {
      return last_access != o.last_access ? last_access < o.last_access : id < o.id;
    }
  };

  void on_page_shared(int32_t page, bool shared) override;

  std::span<const int32_t> block(std::span<const int32_t> tokens, int64_t index) const {
    return tokens.subspan(static_cast<size_t>(index * page_size_),
                          static_cast<size_t>(page_size_));
  }
  // Whole blocks that `node`'s edge shares with tokens[from_block...] (at least the first,
  // which found the node).
  int64_t common_blocks(const Node& node, std::span<const int32_t> tokens, int64_t from_block,
                        int64_t total_blocks) const;
  // Splits node's edge after `keep` blocks; returns the new upper node (which now holds the
  // first `keep` pages, with `node` as its only child).
  Node* split(Node* node, int64_t keep);
  Node* add_leaf(Node* parent, std::span<const int32_t> tokens,
                 std::span<const int32_t> pages, uint64_t time);
  // Drops the evictable tail of a leaf (the whole leaf when no page of it is in use) and its
  // cache references; returns the pages freed.
  int64_t evict_leaf(Node* leaf);
  int64_t tail_pages(const Node& node) const {
    return static_cast<int64_t>(node.pages.size()) - 1 - node.last_shared;
  }
  // Last own page at or before `from` that is referenced besides the cache, or -1.
  int64_t find_last_shared(const Node& node, int64_t from) const;
  void touch(Node* node, uint64_t time);
  // Brings node's LRU membership and its contribution to the aggregates up to date after its
  // own pages, shared pages or children changed, and walks up while an ancestor's changes.
  void refresh(Node* node);
  // Withdraws node's contribution from the aggregates (before it is moved or removed).
  void withdraw(Node* node);

  PageAllocator& pages_;
  int64_t page_size_;
  std::unique_ptr<Node> root_;
  std::vector<Node*> page_owner_;    // page id -> node storing it, or null
  std::vector<int32_t> page_index_;  // page id -> its index in the owner's pages
  std::set<LruKey> lru_;           // evictable leaves, least recently used first
  uint64_t clock_ = 0, next_id_ = 1;
  int64_t cached_pages_ = 0, evictable_pages_ = 0, node_count_ = 0;
  int64_t queried_tokens_ = 0, hit_tokens_ = 0;
};

}  // namespace lowbit
