#include "runtime/radix_cache.h"

#include <algorithm>

#include "core/error.h"

namespace lowbit {

// Aggregates kept up to date on every change, so evict() and evictable_pages() never scan:
// - a node's tail is the run of its pages after its last shared page (all of them when none
//   is shared); a leaf with a non-empty tail is in lru_;
// - a node is "free" when it has no shared page and no blocked child, i.e. evicting leaves
//   repeatedly would remove it entirely; blocked_children counts the children that are not;
// - evictable_pages_ sums the tails of the nodes without blocked children.
// The root holds no pages and is never evicted.

size_t RadixCache::BlockHash::operator()(std::span<const int32_t> block) const {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ block.size();
  for (int32_t t : block) {
    h ^= static_cast<uint32_t>(t);
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  return static_cast<size_t>(h);
}

bool RadixCache::BlockEqual::operator()(std::span<const int32_t> a,
                                        std::span<const int32_t> b) const {
  return std::ranges::equal(a, b);
}

RadixCache::RadixCache(PageAllocator& pages, int64_t page_size)
    : pages_(pages), page_size_(page_size), root_(std::make_unique<Node>()) {
  if (page_size <= 0) fail("prefix cache: page_size must be positive, got {}", page_size);
  LOWBIT_CHECK(pages.watcher() == nullptr, "the KV page pool already has a prefix cache");
  page_owner_.assign(static_cast<size_t>(pages.total_pages()), nullptr);
  page_index_.assign(static_cast<size_t>(pages.total_pages()), -1);
  pages_.set_watcher(this);
}

RadixCache::~RadixCache() {
  clear();
  pages_.set_watcher(nullptr);
}

int64_t RadixCache::common_blocks(const Node& node, std::span<const int32_t> tokens,
                                  int64_t from_block, int64_t total_blocks) const {
  const auto edge = std::span<const int32_t>(node.tokens);
  const int64_t edge_blocks = static_cast<int64_t>(node.pages.size());
  const int64_t limit = std::min(edge_blocks, total_blocks - from_block);
  int64_t k = 1;  // the first block is equal: it is the key the node was found by
  while (k < limit && std::ranges::equal(block(edge, k), block(tokens, from_block + k))) ++k;
  return k;
}

int64_t RadixCache::match(std::span<const int32_t> tokens, std::vector<int32_t>& out) {
  queried_tokens_ += static_cast<int64_t>(tokens.size());
  const int64_t total_blocks = static_cast<int64_t>(tokens.size()) / page_size_;
  const uint64_t time = ++clock_;
  Node* node = root_.get();
  int64_t matched = 0;  // blocks
  while (matched < total_blocks) {
    auto it = node->children.find(block(tokens, matched));
    if (it == node->children.end()) break;
    Node* child = it->second.get();
    const int64_t edge_blocks = static_cast<int64_t>(child->pages.size());
    const int64_t k = common_blocks(*child, tokens, matched, total_blocks);
    // Split a partly matched edge so that only the matched pages count as recently used.
    if (k < edge_blocks) child = split(child, k);
    touch(child, time);
    for (int32_t page : child->pages) {
      pages_.ref(page);  // may report the page as shared, updating child's counts
      out.push_back(page);
    }
    matched += k;
    node = child;
    if (k < edge_blocks) break;
  }
  hit_tokens_ += matched * page_size_;
  return matched * page_size_;
}

int64_t RadixCache::insert(std::span<const int32_t> tokens, std::span<const int32_t> pages) {
  const int64_t total_blocks = static_cast<int64_t>(tokens.size()) / page_size_;
  if (static_cast<int64_t>(pages.size()) < total_blocks)
    fail("prefix cache insert: {} tokens need {} pages of {} tokens, got {} pages", tokens.size(),
         total_blocks, page_size_, pages.size());
  const uint64_t time = ++clock_;
  Node* node = root_.get();
  int64_t matched = 0;  // blocks
  while (matched < total_blocks) {
    auto it = node->children.find(block(tokens, matched));
    if (it == node->children.end()) {
      const auto rest = tokens.subspan(static_cast<size_t>(matched * page_size_),
                                       static_cast<size_t>((total_blocks - matched) * page_size_));
      add_leaf(node, rest, pages.subspan(static_cast<size_t>(matched),
                                         static_cast<size_t>(total_blocks - matched)),
               time);
      return matched;
    }
    Node* child = it->second.get();
    const int64_t k = common_blocks(*child, tokens, matched, total_blocks);
    if (k < static_cast<int64_t>(child->pages.size())) child = split(child, k);
    touch(child, time);
    matched += k;
    node = child;
  }
  return matched;
}

int64_t RadixCache::evict(int64_t n) {
  int64_t freed = 0;
  while (freed < n && !lru_.empty()) freed += evict_leaf(lru_.begin()->node);
  return freed;
}

void RadixCache::clear() {
  std::vector<Node*> stack{root_.get()};
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (auto& [key, child] : node->children) stack.push_back(child.get());
    for (int32_t page : node->pages) {
      page_owner_[page] = nullptr;
      page_index_[page] = -1;
      pages_.watch(page, false);
      pages_.unref(page);
    }
  }
  // Unlink level by level, so freeing a deep chain does not recurse once per edge.
  std::vector<std::unique_ptr<Node>> doomed;
  for (auto& [key, child] : root_->children) doomed.push_back(std::move(child));
  root_->children.clear();
  while (!doomed.empty()) {
    std::unique_ptr<Node> node = std::move(doomed.back());
    doomed.pop_back();
    for (auto& [key, child] : node->children) doomed.push_back(std::move(child));
  }
  root_->blocked_children = 0;
  lru_.clear();
  cached_pages_ = evictable_pages_ = node_count_ = 0;
}

void RadixCache::on_page_shared(int32_t page, bool shared) {
  Node* node = page_owner_[page];
  LOWBIT_CHECK(node != nullptr, "prefix cache: watched page {} is not in the tree", page);
  const int64_t index = page_index_[page];
  if (shared) {
    node->last_shared = std::max(node->last_shared, index);
  } else if (index == node->last_shared) {
    node->last_shared = find_last_shared(*node, index - 1);
  }
  refresh(node);
}

int64_t RadixCache::find_last_shared(const Node& node, int64_t from) const {
  while (from >= 0 && pages_.ref_count(node.pages[from]) <= 1) --from;
  return from;
}

RadixCache::Node* RadixCache::split(Node* node, int64_t keep) {
  LOWBIT_CHECK(keep > 0 && keep < static_cast<int64_t>(node->pages.size()),
               "split of a {}-page edge at {}", node->pages.size(), keep);
  Node* parent = node->parent;
  withdraw(node);
  auto slot = parent->children.find(block(node->tokens, 0));
  std::unique_ptr<Node> lower = std::move(slot->second);

  auto upper = std::make_unique<Node>();
  upper->id = next_id_++;
  upper->parent = parent;
  upper->last_access = node->last_access;
  const auto cut = static_cast<std::ptrdiff_t>(keep * page_size_);
  upper->tokens.assign(node->tokens.begin(), node->tokens.begin() + cut);
  upper->pages.assign(node->pages.begin(), node->pages.begin() + keep);
  node->tokens.erase(node->tokens.begin(), node->tokens.begin() + cut);
  node->pages.erase(node->pages.begin(), node->pages.begin() + keep);
  for (int32_t page : upper->pages) page_owner_[page] = upper.get();
  for (int32_t page : node->pages) page_index_[page] -= static_cast<int32_t>(keep);
  upper->last_shared = find_last_shared(*upper, std::min(node->last_shared, keep - 1));
  node->last_shared = node->last_shared >= keep ? node->last_shared - keep : -1;
  node->parent = upper.get();
  ++node_count_;

  Node* result = upper.get();
  // Both start out counted as blocked children, then refresh() settles what they are.
  upper->blocked_children = 1;
  upper->children.emplace(std::vector<int32_t>(block(node->tokens, 0).begin(),
                                               block(node->tokens, 0).end()),
                          std::move(lower));
  slot->second = std::move(upper);  // same key: the first block did not change
  ++parent->blocked_children;
  refresh(node);
  refresh(result);
  return result;
}

RadixCache::Node* RadixCache::add_leaf(Node* parent, std::span<const int32_t> tokens,
                                       std::span<const int32_t> pages, uint64_t time) {
  // Check every page before taking any, so a bad call leaves the cache as it was.
  for (int32_t page : pages) {
    LOWBIT_CHECK(page >= 0 && page < static_cast<int64_t>(page_owner_.size()),
                 "prefix cache insert: page {} is not in [0, {})", page, page_owner_.size());
    LOWBIT_CHECK(page_owner_[page] == nullptr,
                 "prefix cache insert: page {} is already cached at another position", page);
    LOWBIT_CHECK(pages_.ref_count(page) > 0,
                 "prefix cache insert: page {} is free (the caller must hold it)", page);
  }
  std::vector<int32_t> sorted(pages.begin(), pages.end());
  std::ranges::sort(sorted);
  LOWBIT_CHECK(std::ranges::adjacent_find(sorted) == sorted.end(),
               "prefix cache insert: a page appears twice in one sequence");

  auto leaf = std::make_unique<Node>();
  leaf->id = next_id_++;
  leaf->parent = parent;
  leaf->last_access = time;
  leaf->tokens.assign(tokens.begin(), tokens.end());
  leaf->pages.assign(pages.begin(), pages.end());
  for (size_t i = 0; i < pages.size(); ++i) {
    const int32_t page = pages[i];
    pages_.ref(page);
    pages_.watch(page, true);
    page_owner_[page] = leaf.get();
    page_index_[page] = static_cast<int32_t>(i);
    if (pages_.ref_count(page) > 1) leaf->last_shared = static_cast<int64_t>(i);
  }
  cached_pages_ += static_cast<int64_t>(pages.size());
  Node* result = leaf.get();
  parent->children.emplace(
      std::vector<int32_t>(block(tokens, 0).begin(), block(tokens, 0).end()), std::move(leaf));
  ++parent->blocked_children;  // counted as blocked until refresh() says otherwise
  ++node_count_;
  refresh(result);
  refresh(parent);  // it is no longer a leaf
  return result;
}

int64_t RadixCache::evict_leaf(Node* leaf) {
  const int64_t tail = tail_pages(*leaf);
  LOWBIT_CHECK(leaf != root_.get() && leaf->children.empty() && tail > 0,
               "prefix cache: node {} has nothing to evict", leaf->id);
  for (int64_t i = static_cast<int64_t>(leaf->pages.size()) - tail;
       i < static_cast<int64_t>(leaf->pages.size()); ++i) {
    const int32_t page = leaf->pages[i];
    LOWBIT_CHECK(pages_.ref_count(page) == 1, "prefix cache: evicting page {} with {} refs", page,
                 pages_.ref_count(page));
    page_owner_[page] = nullptr;
    page_index_[page] = -1;
    pages_.watch(page, false);
    pages_.unref(page);
  }
  cached_pages_ -= tail;
  if (tail < static_cast<int64_t>(leaf->pages.size())) {  // the front is in use: keep it
    leaf->pages.resize(leaf->pages.size() - static_cast<size_t>(tail));
    leaf->tokens.resize(leaf->pages.size() * static_cast<size_t>(page_size_));
    refresh(leaf);
    return tail;
  }
  Node* parent = leaf->parent;
  withdraw(leaf);
  --node_count_;
  parent->children.erase(parent->children.find(block(leaf->tokens, 0)));  // destroys leaf
  refresh(parent);
  return tail;
}

void RadixCache::touch(Node* node, uint64_t time) {
  if (node->last_access == time) return;
  if (node->in_lru) {
    lru_.erase(LruKey{node->last_access, node->id, node});
    lru_.insert(LruKey{time, node->id, node});
  }
  node->last_access = time;
}

void RadixCache::withdraw(Node* node) {
  evictable_pages_ -= node->counted_pages;
  if (!node->counted_free) --node->parent->blocked_children;
  node->counted_free = false;
  node->counted_pages = 0;
  if (node->in_lru) lru_.erase(LruKey{node->last_access, node->id, node});
  node->in_lru = false;
}

void RadixCache::refresh(Node* node) {
  while (node != root_.get()) {
    const int64_t tail = tail_pages(*node);
    const bool evictable_leaf = node->children.empty() && tail > 0;
    if (evictable_leaf != node->in_lru) {
      if (evictable_leaf)
        lru_.insert(LruKey{node->last_access, node->id, node});
      else
        lru_.erase(LruKey{node->last_access, node->id, node});
      node->in_lru = evictable_leaf;
    }
    const bool free = node->last_shared < 0 && node->blocked_children == 0;
    const int64_t evictable = node->blocked_children == 0 ? tail : 0;
    evictable_pages_ += evictable - node->counted_pages;
    node->counted_pages = evictable;
    if (free == node->counted_free) return;
    node->counted_free = free;
    node->parent->blocked_children += free ? -1 : 1;
    node = node->parent;
  }
}

void RadixCache::check_invariants() const {
  int64_t cached = 0, evictable = 0, nodes = 0, lru_entries = 0;
  // Post-order: a node is free when its own pages are unshared and all its children are free.
  struct Frame {
    const Node* node;
    bool expanded;
  };
  std::vector<Frame> stack{{root_.get(), false}};
  std::unordered_map<const Node*, bool> free_of;
  while (!stack.empty()) {
    Frame& f = stack.back();
    const Node* node = f.node;
    if (!f.expanded) {
      f.expanded = true;
      for (const auto& [key, child] : node->children) {
        LOWBIT_CHECK(child->parent == node, "node {}: wrong parent", child->id);
        LOWBIT_CHECK(std::ranges::equal(key, block(child->tokens, 0)),
                     "node {}: key is not its first block", child->id);
        stack.push_back({child.get(), false});
      }
      continue;
    }
    stack.pop_back();
    int64_t last_shared = -1, blocked = 0;
    for (size_t i = 0; i < node->pages.size(); ++i) {
      const int32_t page = node->pages[i];
      LOWBIT_CHECK(page_owner_[page] == node && page_index_[page] == static_cast<int32_t>(i),
                   "page {}: wrong owner or index", page);
      LOWBIT_CHECK(pages_.ref_count(page) >= 1, "cached page {} is free", page);
      if (pages_.ref_count(page) > 1) last_shared = static_cast<int64_t>(i);
    }
    for (const auto& [key, child] : node->children) blocked += free_of.at(child.get()) ? 0 : 1;
    if (node == root_.get()) break;
    LOWBIT_CHECK(!node->pages.empty() &&
                     node->tokens.size() == node->pages.size() * static_cast<size_t>(page_size_),
                 "node {}: {} tokens for {} pages", node->id, node->tokens.size(),
                 node->pages.size());
    LOWBIT_CHECK(node->last_access <= node->parent->last_access || node->parent == root_.get(),
                 "node {} used more recently than its parent", node->id);
    LOWBIT_CHECK(last_shared == node->last_shared, "node {}: last shared page {} != {}", node->id,
                 node->last_shared, last_shared);
    LOWBIT_CHECK(blocked == node->blocked_children, "node {}: blocked children {} != {}",
                 node->id, node->blocked_children, blocked);
    const bool free = last_shared < 0 && blocked == 0;
    LOWBIT_CHECK(free == node->counted_free, "node {}: free flag", node->id);
    const int64_t tail = static_cast<int64_t>(node->pages.size()) - 1 - last_shared;
    const int64_t counted = blocked == 0 ? tail : 0;
    LOWBIT_CHECK(counted == node->counted_pages, "node {}: counts {} evictable pages, not {}",
                 node->id, node->counted_pages, counted);
    const bool leaf = node->children.empty() && tail > 0;
    LOWBIT_CHECK(leaf == node->in_lru &&
                     (!leaf || lru_.count(LruKey{node->last_access, node->id, nullptr})),
                 "node {}: LRU membership", node->id);
    free_of[node] = free;
    cached += static_cast<int64_t>(node->pages.size());
    evictable += counted;
    lru_entries += leaf ? 1 : 0;
    ++nodes;
  }
  int64_t owned = 0;
  for (const Node* owner : page_owner_) owned += owner ? 1 : 0;
  LOWBIT_CHECK(cached == cached_pages_ && owned == cached, "cached pages {} / {} / {}",
               cached_pages_, cached, owned);
  LOWBIT_CHECK(evictable == evictable_pages_, "evictable pages {} != {}", evictable_pages_,
               evictable);
  LOWBIT_CHECK(nodes == node_count_, "node count {} != {}", node_count_, nodes);
  LOWBIT_CHECK(lru_entries == static_cast<int64_t>(lru_.size()), "LRU size {} != {}",
               lru_.size(), lru_entries);
}

}  // namespace lowbit
