// Per-sequence model state. Mostly the attention state: keys and values of every past position, per layer, in F32,
// BF16 or FP8 E4M3 (chosen at load, runtime_options().kv_cache_dtype), in a pool of fixed-size
// pages allocated once (an anonymous mapping: memory is committed only as pages are written).
//
// A sequence reaches its rows in one of two ways (KvSeq):
//  - a slot: one whole page used as a contiguous buffer of page_size positions, for tools that
//    run a few sequences of known length (generate, eval, bench): make_cache(slots, capacity);
//  - a page table: the serving engine's paged cache (runtime/kv_pages, runtime/radix_cache),
//    where pages hold 2^k ≥ kKvPageMinTokens positions and sequences with a common prefix share
//    its pages.
//
// Layout per (layer, page, k|v): [kv_head][position in page][head_dim], so the positions of one
// KV head within a page are one contiguous stream: a decode tile reads memory sequentially and
// the hardware prefetchers stay on it. Kernels see the cache only through KvView.
//
// Models with recurrent layers (Qwen3-Next) also keep fixed-size states here, in slots of
// their own (recurrent()): KV pages hold the attention layers only.
//
// FP8 E4M3 keeps one fp32 scale per (position, KV head) row, amax/448. SGLang's default is a
// single per-tensor scale of 1.0, which assumes activations already sit in e4m3's range; per
// row costs 4 bytes per head_dim bytes (3 % at 128) and stays accurate whatever the
// magnitudes of a model's keys and values (random or unusual checkpoints, outlier heads),
// without calibration. `lowbit eval kld` against an f32 cache (SmolLM2-135M-Instruct, first
// 16384 tokens of Pride and Prejudice, ctx 512, fp32 activations): FP8 per row 0.0071 (PPL
// 21.95 vs 21.80), FP8 per-tensor scale 1.0 0.0110 (PPL 21.99), BF16 0.00005 (PPL 21.80).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/dtype.h"
#include "kernels/attention.h"
#include "models/recurrent_state.h"

namespace lowbit {

// Where one sequence's rows are: a page table (paged caches) or, when pages is empty, the one
// page `slot` used contiguously.
struct KvSeq {
  int64_t slot = 0;
  std::span<const int32_t> pages;
};

class KvCache {
 public:
  KvCache(int64_t num_layers, int64_t num_kv_heads, int64_t head_dim, int64_t num_pages, int64_t page_size,
          DType dtype = DType::F32);

  // Encodes one KV head's row (head_dim floats) of position pos: kv = 0 for keys, 1 for values.
  void store(int64_t layer, const KvSeq& seq, int kv, int64_t pos, int64_t head, const float* row);
  // Keys and values of one (layer, sequence) for the attention kernels. A page table must cover
  // every position the kernels will read and stay alive while the view is used.
  KvView view(int64_t layer, const KvSeq& seq) const;

  DType dtype() const { return dtype_; }
  int64_t num_pages() const { return num_pages_; }
  int64_t page_size() const { return page_size_; }
  // Page tables need a power-of-two page size of at least kKvPageMinTokens.
  bool pageable() const { return page_shift_ >= 0; }
  int64_t num_slots() const { return num_pages_; }  // slot use: one page per sequence
  int64_t capacity() const { return page_size_; }   // slot use: positions per sequence
  // KV bytes only (recurrent().bytes() is the rest).
  size_t bytes() const { return data_bytes_ + scales_.size() * sizeof(float); }
  RecurrentStates& recurrent() { return recurrent_; }
  const RecurrentStates& recurrent() const { return recurrent_; }
  void set_recurrent(RecurrentStates states) { recurrent_ = std::move(states); }
  size_t bytes_per_page() const { return bytes() / size_t(num_pages_); }
  // Tensor parallelism: the id the other ranks know this cache by, and a handle whose last
  // copy, when released, tells them to drop theirs.
  int64_t tp_id() const { return tp_id_; }
  void set_tp_handle(int64_t id, std::shared_ptr<void> handle) {
    tp_id_ = id;
    tp_handle_ = std::move(handle);
  }

 private:
  // Index of the first element (or scale) of (layer, page, kv, head, pos 0).
  size_t head_index(int64_t layer, int64_t page, int kv, int64_t head) const {
    return size_t(((layer * num_pages_ + page) * 2 + kv) * num_kv_heads_ + head) * size_t(page_size_);
  }
  // (page, position in page) of a sequence's position.
  std::pair<int64_t, int64_t> locate(const KvSeq& seq, int64_t pos) const;
  struct Unmap {
    size_t bytes;
    void operator()(uint8_t* p) const;
  };
  int64_t num_layers_, num_kv_heads_, head_dim_, num_pages_, page_size_;
  int page_shift_ = -1;
  int64_t tp_id_ = 0;
  std::shared_ptr<void> tp_handle_;
  DType dtype_;
  size_t elem_size_, data_bytes_;
  std::unique_ptr<uint8_t, Unmap> data_;  // anonymous mapping: page-aligned, zero pages until written
  std::vector<float> scales_;             // FP8 only
  RecurrentStates recurrent_;
};

}  // namespace lowbit
