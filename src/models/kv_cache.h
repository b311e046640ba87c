// Per-sequence attention state: keys and values of every past position, per layer, in F32,
// BF16 or FP8 E4M3 (chosen at load, runtime_options().kv_cache_dtype). A cache has a fixed
// number of slots (one per running sequence) and a context capacity.
//
// Layout per (layer, slot, k|v): [kv_head][position][head_dim], so the positions of one KV
// head are one contiguous stream: a decode tile (one KV head, a run of positions) reads
// memory sequentially and the hardware prefetchers stay on it. Kernels see the cache only
// through KvView (base pointers and strides per layer and slot), so the serving issue's paged
// cache can hand out per-page views without touching them.
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
#include <vector>

#include "core/dtype.h"
#include "kernels/attention.h"

namespace lowbit {

class KvCache {
 public:
  KvCache(int64_t num_layers, int64_t num_kv_heads, int64_t head_dim, int64_t num_slots, int64_t capacity,
          DType dtype = DType::F32);

  // Encodes one KV head's row (head_dim floats) of position pos: kv = 0 for keys, 1 for values.
  void store(int64_t layer, int64_t slot, int kv, int64_t pos, int64_t head, const float* row);
  // Keys and values of one (layer, slot) for the attention kernels.
  KvView view(int64_t layer, int64_t slot) const;

  DType dtype() const { return dtype_; }
  int64_t capacity() const { return capacity_; }
  int64_t num_slots() const { return num_slots_; }
  size_t bytes() const { return data_bytes_ + scales_.size() * sizeof(float); }

 private:
  // Index of the first element (or scale) of (layer, slot, kv, head, pos 0).
  size_t head_index(int64_t layer, int64_t slot, int kv, int64_t head) const {
    return size_t(((layer * num_slots_ + slot) * 2 + kv) * num_kv_heads_ + head) * size_t(capacity_);
  }
  struct Unmap {
    size_t bytes;
    void operator()(uint8_t* p) const;
  };
  int64_t num_layers_, num_kv_heads_, head_dim_, num_slots_, capacity_;
  DType dtype_;
  size_t elem_size_, data_bytes_;
  std::unique_ptr<uint8_t, Unmap> data_;  // anonymous mapping: page-aligned, zero pages until written
  std::vector<float> scales_;             // FP8 only
};

}  // namespace lowbit
