#include "models/kv_cache.h"

#include <sys/mman.h>

#include "core/error.h"

namespace lowbit {

void KvCache::Unmap::operator()(uint8_t* p) const {
  if (p) munmap(p, bytes);
}

KvCache::KvCache(int64_t num_layers, int64_t num_kv_heads, int64_t head_dim, int64_t num_slots, int64_t capacity,
                 DType dtype)
    : num_layers_(num_layers),
      num_kv_heads_(num_kv_heads),
      head_dim_(head_dim),
      num_slots_(num_slots),
      capacity_(capacity),
      dtype_(dtype),
      elem_size_(dtype_size(dtype)) {
  if (num_slots <= 0 || capacity <= 0) fail("KV cache needs at least one slot and one position");
  if (dtype != DType::F32 && dtype != DType::BF16 && dtype != DType::F8_E4M3)
    fail("KV cache dtype {} is not supported (F32, BF16, F8_E4M3)", dtype_name(dtype));
  const size_t rows = size_t(num_layers * num_slots * 2 * num_kv_heads) * size_t(capacity);
  data_bytes_ = rows * size_t(head_dim) * elem_size_;
  void* p = mmap(nullptr, data_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail("cannot allocate a KV cache of {} MiB", data_bytes_ >> 20);
  data_ = std::unique_ptr<uint8_t, Unmap>(static_cast<uint8_t*>(p), Unmap{data_bytes_});
  if (dtype == DType::F8_E4M3) scales_.assign(rows, 0.0f);
}

void KvCache::store(int64_t layer, int64_t slot, int kv, int64_t pos, int64_t head, const float* row) {
  const size_t at = head_index(layer, slot, kv, head) + size_t(pos);
  kv_encode_row(dtype_, row, head_dim_, data_.get() + at * size_t(head_dim_) * elem_size_,
                scales_.empty() ? nullptr : scales_.data() + at);
}

KvView KvCache::view(int64_t layer, int64_t slot) const {
  LOWBIT_CHECK(layer >= 0 && layer < num_layers_ && slot >= 0 && slot < num_slots_, "KV cache view ({}, {}) of {} x {}",
               layer, slot, num_layers_, num_slots_);
  KvView v;
  v.dtype = dtype_;
  v.k = data_.get() + head_index(layer, slot, 0, 0) * size_t(head_dim_) * elem_size_;
  v.v = data_.get() + head_index(layer, slot, 1, 0) * size_t(head_dim_) * elem_size_;
  v.pos_stride = head_dim_;
  v.head_stride = capacity_ * head_dim_;
  if (!scales_.empty()) {
    v.k_scale = scales_.data() + head_index(layer, slot, 0, 0);
    v.v_scale = scales_.data() + head_index(layer, slot, 1, 0);
    v.scale_pos_stride = 1;
    v.scale_head_stride = capacity_;
  }
  return v;
}

}  // namespace lowbit
