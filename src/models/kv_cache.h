// Per-sequence attention state: keys and values of every past position, per layer, in fp32.
// A cache has a fixed number of slots (one per running sequence) and a context capacity.
// Layout per (layer, slot): [position][kv_head][head_dim], so one position's K of all heads
// is contiguous and attention walks positions with a fixed stride. The runtime's paged cache
// (serving issue) will implement the same accessors over blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lowbit {

class KvCache {
 public:
  KvCache(int64_t num_layers, int64_t num_kv_heads, int64_t head_dim, int64_t num_slots, int64_t capacity);

  float* key(int64_t layer, int64_t slot, int64_t pos) { return data_.data() + offset(layer, slot, pos, 0); }
  float* value(int64_t layer, int64_t slot, int64_t pos) { return data_.data() + offset(layer, slot, pos, 1); }
  const float* key(int64_t layer, int64_t slot, int64_t pos) const { return data_.data() + offset(layer, slot, pos, 0); }
  const float* value(int64_t layer, int64_t slot, int64_t pos) const { return data_.data() + offset(layer, slot, pos, 1); }

  int64_t capacity() const { return capacity_; }
  int64_t num_slots() const { return num_slots_; }
  int64_t position_stride() const { return row_; }  // floats between consecutive positions
  size_t bytes() const { return data_.size() * sizeof(float); }

 private:
  size_t offset(int64_t layer, int64_t slot, int64_t pos, int kv) const {
    return size_t((((layer * num_slots_ + slot) * 2 + kv) * capacity_ + pos) * row_);
  }
  int64_t num_layers_, num_slots_, capacity_, row_;
  std::vector<float> data_;
};

}  // namespace lowbit
