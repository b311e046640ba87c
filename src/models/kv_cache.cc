#include "models/kv_cache.h"

#include "core/error.h"

namespace lowbit {

KvCache::KvCache(int64_t num_layers, int64_t num_kv_heads, int64_t head_dim, int64_t num_slots, int64_t capacity)
    : num_layers_(num_layers), num_slots_(num_slots), capacity_(capacity), row_(num_kv_heads * head_dim) {
  if (num_slots <= 0 || capacity <= 0) fail("KV cache needs at least one slot and one position");
  data_.assign(size_t(num_layers * num_slots * 2 * capacity * row_), 0.0f);
}

}  // namespace lowbit
