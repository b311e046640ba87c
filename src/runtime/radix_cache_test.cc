#include "runtime/radix_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <random>
#include <string>

#include "core/error.h"

namespace lowbit {
namespace {

// One token per character, so sequences read as strings ("aabb" with page_size 2 is two pages).
std::vector<int32_t> T(const std::string& s) { return std::vector<int32_t>(s.begin(), s.end()); }

std::vector<int32_t> take(PageAllocator& pool, int64_t n) {
  std::vector<int32_t> pages;
  EXPECT_TRUE(pool.allocate(n, pages));
  return pages;
}

void unref_all(PageAllocator& pool, const std::vector<int32_t>& pages) {
  for (int32_t p : pages) pool.unref(p);
}

// Inserts a sequence with fresh pages as a finished request would, then drops the request's
// references, leaving the cache as the only holder.
std::vector<int32_t> insert_and_release(PageAllocator& pool, RadixCache& cache,
                                        const std::string& s) {
  auto pages = take(pool, static_cast<int64_t>(s.size()) / cache.page_size());
  cache.insert(T(s), pages);
  unref_all(pool, pages);
  return pages;
}

TEST(RadixCache, EmptyAndPartialPagesNeverMatch) {
  PageAllocator pool(8);
  RadixCache cache(pool, 2);
  std::vector<int32_t> out;
  EXPECT_EQ(cache.match({}, out), 0);
  EXPECT_EQ(cache.insert({}, {}), 0);
  EXPECT_EQ(cache.match(T("a"), out), 0);
  EXPECT_EQ(cache.insert(T("a"), {}), 0);  // no whole page: nothing stored, no pages needed
  EXPECT_EQ(cache.cached_pages(), 0);

  auto pages = take(pool, 2);  // "aab": one whole page and a partial one
  EXPECT_EQ(cache.insert(T("aab"), pages), 0);
  EXPECT_EQ(cache.cached_pages(), 1);
  EXPECT_EQ(pool.ref_count(pages[0]), 2);
  EXPECT_EQ(pool.ref_count(pages[1]), 1);  // the partial page is not taken
  EXPECT_EQ(cache.match(T("aab"), out), 2);
  EXPECT_EQ(out, std::vector<int32_t>{pages[0]});
  EXPECT_EQ(cache.match(T("ab"), out), 0);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(cache.queried_tokens(), 0 + 1 + 3 + 2);
  EXPECT_EQ(cache.hit_tokens(), 2);
  cache.check_invariants();
  unref_all(pool, out);
  unref_all(pool, pages);
  cache.clear();
  EXPECT_EQ(pool.free_pages(), 8);
}

TEST(RadixCache, SplitsAnEdgeWhereSequencesDiverge) {
  PageAllocator pool(16);
  RadixCache cache(pool, 2);
  auto a = take(pool, 4);
  EXPECT_EQ(cache.insert(T("aabbccdd"), a), 0);
  EXPECT_EQ(cache.node_count(), 1);
  auto b = take(pool, 4);
  EXPECT_EQ(cache.insert(T("aabbxxyy"), b), 2);  // "aa","bb" were cached: b[0], b[1] not taken
  EXPECT_EQ(cache.node_count(), 3);
  EXPECT_EQ(cache.cached_pages(), 6);
  EXPECT_EQ(pool.ref_count(b[0]), 1);
  EXPECT_EQ(pool.ref_count(b[2]), 2);
  cache.check_invariants();

  std::vector<int32_t> out;
  EXPECT_EQ(cache.match(T("aabbccdd"), out), 8);
  EXPECT_EQ(out, a);
  out.clear();
  EXPECT_EQ(cache.match(T("aabbxxyyz"), out), 8);
  EXPECT_EQ(out, (std::vector<int32_t>{a[0], a[1], b[2], b[3]}));
  out.clear();
  EXPECT_EQ(cache.match(T("aabbcx"), out), 4);  // "cx" differs from "cc" inside the page
  EXPECT_EQ(cache.match(T("aabbc"), out), 4);
  EXPECT_EQ(cache.node_count(), 3);
  EXPECT_EQ(cache.match(T("aabbccd"), out), 6);  // stops inside the "ccdd" edge: split it
  EXPECT_EQ(cache.node_count(), 4);
  cache.check_invariants();
  out.clear();
  EXPECT_EQ(cache.match(T("aabbccdd"), out), 8);  // the split edge still matches whole
  EXPECT_EQ(out, a);
  // A third branch off the middle of the upper edge.
  auto c = take(pool, 2);
  EXPECT_EQ(cache.insert(T("aazz"), c), 1);
  EXPECT_EQ(cache.node_count(), 6);
  cache.check_invariants();
}

TEST(RadixCache, EvictsLeastRecentlyUsedLeavesFirst) {
  PageAllocator pool(16);
  RadixCache cache(pool, 2);
  auto a = insert_and_release(pool, cache, "aaaa");
  auto b = insert_and_release(pool, cache, "bbbb");
  auto c = insert_and_release(pool, cache, "cccc");
  std::vector<int32_t> out;
  cache.match(T("aaaa"), out);  // a is now the most recently used
  unref_all(pool, out);
  EXPECT_EQ(cache.evictable_pages(), 6);
  EXPECT_EQ(cache.evict(1), 2);  // a whole leaf goes
  EXPECT_EQ(pool.ref_count(b[0]), 0);
  EXPECT_EQ(pool.ref_count(c[0]), 1);
  EXPECT_EQ(cache.evict(1), 2);
  EXPECT_EQ(pool.ref_count(c[0]), 0);
  EXPECT_EQ(pool.ref_count(a[0]), 1);
  EXPECT_EQ(cache.evict(0), 0);
  EXPECT_EQ(cache.evict(5), 2);
  EXPECT_EQ(cache.evict(5), 0);
  EXPECT_EQ(pool.free_pages(), 16);
  cache.check_invariants();
}

TEST(RadixCache, ParentBecomesEvictableWhenItsLastChildGoes) {
  PageAllocator pool(16);
  RadixCache cache(pool, 2);
  auto x = insert_and_release(pool, cache, "ppxx");
  auto y = insert_and_release(pool, cache, "ppyy");  // splits "ppxx" into "pp" -> {"xx","yy"}
  auto z = insert_and_release(pool, cache, "zz");
  std::vector<int32_t> out;
  cache.match(T("ppxx"), out);
  unref_all(pool, out);
  EXPECT_EQ(cache.evictable_pages(), 4);
  // Leaves by age: "yy" (insert 2), "zz" (insert 3), "xx" (the match); "pp" only when a leaf.
  EXPECT_EQ(cache.evict(1), 1);
  EXPECT_EQ(pool.ref_count(y[1]), 0);
  EXPECT_EQ(cache.evict(1), 1);
  EXPECT_EQ(pool.ref_count(z[0]), 0);
  EXPECT_EQ(cache.evict(1), 1);
  EXPECT_EQ(pool.ref_count(x[1]), 0);
  EXPECT_EQ(pool.ref_count(x[0]), 1);  // "pp" is a leaf now
  EXPECT_EQ(cache.evictable_pages(), 1);
  EXPECT_EQ(cache.evict(1), 1);
  EXPECT_EQ(cache.cached_pages(), 0);
  EXPECT_EQ(cache.node_count(), 0);
  cache.check_invariants();
}

TEST(RadixCache, PagesInUseAreNeverEvicted) {
  PageAllocator pool(16);
  RadixCache cache(pool, 2);
  auto a = insert_and_release(pool, cache, "aabbccdd");
  std::vector<int32_t> held;
  EXPECT_EQ(cache.match(T("aabb"), held), 4);  // a request now uses the first two pages
  EXPECT_EQ(cache.evictable_pages(), 2);
  EXPECT_EQ(cache.evict(100), 2);
  EXPECT_EQ(cache.evictable_pages(), 0);
  EXPECT_EQ(cache.evict(100), 0);
  EXPECT_EQ(pool.ref_count(held[0]), 2);
  unref_all(pool, held);
  EXPECT_EQ(cache.evictable_pages(), 2);

  // A request holding only a deep page pins the whole path above it.
  auto b = take(pool, 3);
  cache.insert(T("xxyyzz"), b);
  pool.unref(b[0]);
  pool.unref(b[1]);
  EXPECT_EQ(cache.evictable_pages(), 2);  // only "aabb"
  EXPECT_EQ(cache.evict(100), 2);
  EXPECT_EQ(cache.cached_pages(), 3);
  pool.unref(b[2]);
  EXPECT_EQ(cache.evictable_pages(), 3);
  cache.check_invariants();
  cache.clear();
  EXPECT_EQ(pool.free_pages(), 16);
}

TEST(RadixCache, ClearKeepsPagesRequestsHold) {
  PageAllocator pool(8);
  RadixCache cache(pool, 4);
  auto a = take(pool, 2);
  cache.insert(T("abcdefgh"), a);
  cache.clear();
  EXPECT_EQ(cache.cached_pages(), 0);
  EXPECT_EQ(pool.ref_count(a[0]), 1);
  std::vector<int32_t> out;
  EXPECT_EQ(cache.match(T("abcdefgh"), out), 0);
  EXPECT_EQ(cache.insert(T("abcdefgh"), a), 0);  // usable again after clear
  unref_all(pool, a);
  EXPECT_EQ(cache.evict(2), 2);
  EXPECT_EQ(pool.free_pages(), 8);
}

TEST(RadixCache, EvictsTheUnusedTailOfALeafWhoseFrontIsInUse) {
  PageAllocator pool(8);
  RadixCache cache(pool, 2);
  // After clear(), a request re-inserts pages it matched before and another request still
  // shares: the new leaf's front is in use, its tail is not.
  auto a = take(pool, 2);
  cache.insert(T("aabb"), a);
  std::vector<int32_t> other;
  EXPECT_EQ(cache.match(T("aa"), other), 2);  // another request shares a[0]
  cache.clear();
  auto more = take(pool, 2);
  std::vector<int32_t> seq{a[0], a[1], more[0], more[1]};
  EXPECT_EQ(cache.insert(T("aabbccdd"), seq), 0);
  EXPECT_EQ(cache.node_count(), 1);
  unref_all(pool, seq);  // the first request finishes
  EXPECT_EQ(cache.evictable_pages(), 3);
  EXPECT_EQ(cache.evict(1), 3);
  EXPECT_EQ(cache.cached_pages(), 1);
  EXPECT_EQ(pool.ref_count(other[0]), 2);
  EXPECT_EQ(cache.evictable_pages(), 0);
  cache.check_invariants();
  std::vector<int32_t> out;
  EXPECT_EQ(cache.match(T("aabbccdd"), out), 2);
  unref_all(pool, out);
  unref_all(pool, other);
  EXPECT_EQ(cache.evict(1), 1);
  EXPECT_EQ(pool.free_pages(), 8);
}

TEST(RadixCache, RejectsMisuse) {
  PageAllocator pool(8);
  RadixCache cache(pool, 2);
  auto a = take(pool, 2);
  EXPECT_THROW(cache.insert(T("aabbcc"), a), Error);  // 3 pages of tokens, 2 pages given
  std::vector<int32_t> freed{7};
  EXPECT_THROW(cache.insert(T("zz"), freed), Error);  // page 7 is not in use
  cache.insert(T("aa"), std::span<const int32_t>(a).first(1));
  EXPECT_THROW(cache.insert(T("bb"), std::span<const int32_t>(a).first(1)), Error);  // cached
  auto b = take(pool, 2);
  std::vector<int32_t> twice{b[0], b[0]};
  EXPECT_THROW(cache.insert(T("ccdd"), twice), Error);
  EXPECT_EQ(pool.ref_count(b[0]), 1);  // a rejected insert takes nothing
  EXPECT_EQ(cache.cached_pages(), 1);
  cache.check_invariants();
  EXPECT_THROW(RadixCache(pool, 0), Error);
  EXPECT_THROW(RadixCache(pool, 2), Error);  // the pool already has a cache watching it
}

// ---- Randomised comparison with a brute-force model ----
//
// The model keeps every cached page under the full token prefix it ends, and the time of the
// last match/insert whose path covered it. Requests hold pages as the engine would: matched
// prefix plus fresh pages, grown as tokens are appended, inserted and released at random.
class Model {
 public:
  Model(int64_t num_pages, int64_t page_size, uint32_t seed)
      : pool_(num_pages), cache_(pool_, page_size), ps_(page_size), rng_(seed) {
    for (auto& s : systems_) s = random_tokens(18);
  }

  void step() {
    const int op = static_cast<int>(rng_() % 100);
    if (op < 25 && reqs_.size() < 5) {
      start_request();
    } else if (op < 45 && !reqs_.empty()) {
      insert(reqs_[rng_() % reqs_.size()]);
    } else if (op < 65 && !reqs_.empty()) {
      extend(rng_() % reqs_.size());
    } else if (op < 85 && !reqs_.empty()) {
      const size_t i = rng_() % reqs_.size();
      if (rng_() % 2) insert(reqs_[i]);
      release(i);
    } else if (op < 97) {
      evict(static_cast<int64_t>(rng_() % 8));
    } else if (op < 98) {
      cache_.clear();
      cached_.clear();
      used_at_.clear();
    }
    check();
  }

  void finish() {
    while (!reqs_.empty()) release(reqs_.size() - 1);
    check();
    cache_.clear();
    cached_.clear();
    check();
    EXPECT_EQ(pool_.free_pages(), pool_.total_pages());
  }

  int64_t evicted_total = 0, splits_seen = 0;

 private:
  struct Request {
    std::vector<int32_t> tokens, pages;
  };

  std::vector<int32_t> random_tokens(size_t n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng_() % 3);  // tiny alphabet: many shared pages
    return t;
  }
  std::vector<int32_t> prefix(const std::vector<int32_t>& t, int64_t pages) const {
    return std::vector<int32_t>(t.begin(), t.begin() + pages * ps_);
  }
  int64_t oracle_match(const std::vector<int32_t>& t) const {
    int64_t k = 0;
    while ((k + 1) * ps_ <= static_cast<int64_t>(t.size()) && cached_.count(prefix(t, k + 1))) ++k;
    return k;
  }

  void start_request() {
    Request r;
    if (rng_() % 4) {  // most prompts start with part of a shared "system prompt"
      const auto& s = systems_[rng_() % systems_.size()];
      r.tokens.assign(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(rng_() % (s.size() + 1)));
    }
    auto tail = random_tokens(rng_() % 10);
    r.tokens.insert(r.tokens.end(), tail.begin(), tail.end());

    const int64_t nodes_before = cache_.node_count();
    const int64_t got = cache_.match(r.tokens, r.pages);
    ++now_;
    const int64_t k = oracle_match(r.tokens);
    ASSERT_EQ(got, k * ps_);
    ASSERT_EQ(static_cast<int64_t>(r.pages.size()), k);
    for (int64_t i = 0; i < k; ++i) {
      ASSERT_EQ(r.pages[i], cached_.at(prefix(r.tokens, i + 1)));
      used_at_[prefix(r.tokens, i + 1)] = now_;
    }
    splits_seen += cache_.node_count() > nodes_before;
    reqs_.push_back(std::move(r));
    if (!grow_pages(reqs_.back())) release(reqs_.size() - 1);
  }

  // Gives the request a page for every started block, evicting from the cache when the pool is
  // short; false when even that is not enough (the engine would preempt).
  bool grow_pages(Request& r) {
    const int64_t need = (static_cast<int64_t>(r.tokens.size()) + ps_ - 1) / ps_ -
                         static_cast<int64_t>(r.pages.size());
    if (need <= 0) return true;
    if (pool_.allocate(need, r.pages)) return true;
    evict(need - pool_.free_pages());
    return pool_.allocate(need, r.pages);
  }

  void extend(size_t i) {
    auto more = random_tokens(1 + rng_() % 6);
    reqs_[i].tokens.insert(reqs_[i].tokens.end(), more.begin(), more.end());
    if (!grow_pages(reqs_[i])) release(i);
  }

  void insert(const Request& r) {
    const int64_t blocks = static_cast<int64_t>(r.tokens.size()) / ps_;
    int64_t already = 0;
    while (already < blocks && cached_.count(prefix(r.tokens, already + 1))) ++already;
    ASSERT_EQ(cache_.insert(r.tokens, r.pages), already);
    ++now_;
    for (int64_t i = 0; i < blocks; ++i) {
      auto key = prefix(r.tokens, i + 1);
      if (i >= already) cached_[key] = r.pages[i];
      used_at_[key] = now_;
    }
  }

  void release(size_t i) {
    unref_all(pool_, reqs_[i].pages);
    reqs_.erase(reqs_.begin() + static_cast<std::ptrdiff_t>(i));
  }

  static bool extends(const std::vector<int32_t>& longer, const std::vector<int32_t>& shorter) {
    return longer.size() > shorter.size() &&
           std::equal(shorter.begin(), shorter.end(), longer.begin());
  }
  bool is_leaf(const std::vector<int32_t>& key) const {
    for (const auto& [other, page] : cached_)
      if (extends(other, key)) return false;
    return true;
  }

  void evict(int64_t n) {
    const int64_t evictable = cache_.evictable_pages();
    const int64_t freed = cache_.evict(n);
    ASSERT_GE(freed, std::min(n, evictable));
    ASSERT_LE(freed, evictable);
    uint64_t newest_evicted = 0;
    int64_t gone = 0;
    for (auto it = cached_.begin(); it != cached_.end();) {
      if (pool_.ref_count(it->second) == 0) {
        newest_evicted = std::max(newest_evicted, used_at_.at(it->first));
        used_at_.erase(it->first);
        it = cached_.erase(it);
        ++gone;
      } else {
        ++it;
      }
    }
    ASSERT_EQ(gone, freed);
    evicted_total += freed;
    // Least recently used first: no leaf the cache could still evict is older than any page
    // it did evict.
    for (const auto& [key, page] : cached_) {
      if (pool_.ref_count(page) == 1 && is_leaf(key)) {
        ASSERT_GE(used_at_.at(key), newest_evicted) << "evicted a newer leaf before an older one";
      }
    }
  }

  void check() {
    cache_.check_invariants();
    ASSERT_EQ(cache_.cached_pages(), static_cast<int64_t>(cached_.size()));
    // Every reference is accounted for: the requests' plus one per cached page.
    std::vector<int32_t> expected(static_cast<size_t>(pool_.total_pages()), 0);
    for (const auto& r : reqs_)
      for (int32_t p : r.pages) ++expected[p];
    for (const auto& [key, page] : cached_) {
      ++expected[page];
      if (key.size() > static_cast<size_t>(ps_)) {  // the tree has no holes
        ASSERT_TRUE(cached_.count(std::vector<int32_t>(key.begin(), key.end() - ps_)));
      }
    }
    int64_t used = 0;
    for (int32_t p = 0; p < pool_.total_pages(); ++p) {
      ASSERT_EQ(pool_.ref_count(p), expected[p]) << "page " << p;
      used += expected[p] > 0;
    }
    ASSERT_EQ(pool_.used_pages(), used);
    // Evictable pages: those whose every cached extension (and itself) only the cache holds.
    int64_t evictable = 0;
    for (const auto& [key, page] : cached_) {
      bool free = pool_.ref_count(page) == 1;
      for (const auto& [other, other_page] : cached_)
        free = free && (!extends(other, key) || pool_.ref_count(other_page) == 1);
      evictable += free;
    }
    ASSERT_EQ(cache_.evictable_pages(), evictable);
  }

  PageAllocator pool_;
  RadixCache cache_;
  int64_t ps_;
  std::mt19937 rng_;
  std::array<std::vector<int32_t>, 3> systems_;
  std::vector<Request> reqs_;
  std::map<std::vector<int32_t>, int32_t> cached_;
  std::map<std::vector<int32_t>, uint64_t> used_at_;
  uint64_t now_ = 0;
};

TEST(RadixCache, RandomisedAgainstBruteForceModel) {
  for (int64_t page_size : {1, 2, 3, 4}) {
    for (uint32_t seed : {1u, 2u, 3u}) {
      SCOPED_TRACE(testing::Message() << "page_size " << page_size << " seed " << seed);
      Model model(40, page_size, seed * 100 + static_cast<uint32_t>(page_size));
      for (int step = 0; step < 2500; ++step) {
        model.step();
        if (testing::Test::HasFatalFailure()) return;
      }
      model.finish();
      // The workload must actually exercise eviction and edge splitting.
      EXPECT_GT(model.evicted_total, 50);
      EXPECT_GT(model.splits_seen, 10);
    }
  }
}

}  // namespace
}  // namespace lowbit
