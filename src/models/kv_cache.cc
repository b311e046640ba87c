#include "models/kv_cache.h"

#include <sys/mman.h>

#include <bit>

#include "core/error.h"

namespace lowbit {

void KvCache::Unmap::operator()(uint8_t* p) const {
  if (p) munmap(p, bytes);
}

KvCache::KvCache(int64_t num_layers, int64_t num_kv_heads, int64_t head_dim, int64_t num_pages, int64_t page_size,
                 DType dtype)
    : num_layers_(num_layers),
      num_kv_heads_(num_kv_heads),
      head_dim_(head_dim),
      num_pages_(num_pages),
      page_size_(page_size),
      dtype_(dtype),
      elem_size_(dtype_size(dtype)) {
  if (num_pages <= 0 || page_size <= 0) fail("KV cache needs at least one page of at least one position");
  if (dtype != DType::F32 && dtype != DType::BF16 && dtype != DType::F8_E4M3)
    fail("KV cache dtype {} is not supported (F32, BF16, F8_E4M3)", dtype_name(dtype));
  if (std::has_single_bit(uint64_t(page_size)) && page_size >= kKvPageMinTokens)
    page_shift_ = std::countr_zero(uint64_t(page_size));
  const size_t rows = size_t(num_layers * num_pages * 2 * num_kv_heads) * size_t(page_size);
  data_bytes_ = rows * size_t(head_dim) * elem_size_;
  void* p = mmap(nullptr, data_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) fail("cannot allocate a KV cache of {} MiB", data_bytes_ >> 20);
  data_ = std::unique_ptr<uint8_t, Unmap>(static_cast<uint8_t*>(p), Unmap{data_bytes_});
  if (dtype == DType::F8_E4M3) scales_.assign(rows, 0.0f);
}

std::pair<int64_t, int64_t> KvCache::locate(const KvSeq& seq, int64_t pos) const {
  if (seq.pages.empty()) return {seq.slot, pos};
  return {seq.pages[size_t(pos >> page_shift_)], pos & (page_size_ - 1)};
}

void KvCache::store(int64_t layer, const KvSeq& seq, int kv, int64_t pos, int64_t head, const float* row) {
  const auto [page, at_in_page] = locate(seq, pos);
  const size_t at = head_index(layer, page, kv, head) + size_t(at_in_page);
  kv_encode_row(dtype_, row, head_dim_, data_.get() + at * size_t(head_dim_) * elem_size_,
                scales_.empty() ? nullptr : scales_.data() + at);
}

KvView KvCache::view(int64_t layer, const KvSeq& seq) const {
  const bool paged = !seq.pages.empty();
  const int64_t page = paged ? 0 : seq.slot;
  LOWBIT_CHECK(layer >= 0 && layer < num_layers_ && page >= 0 && page < num_pages_, "KV cache view ({}, {}) of {} x {}",
               layer, page, num_layers_, num_pages_);
  LOWBIT_CHECK(!paged || pageable(), "KV cache pages of {} positions cannot hold a page table", page_size_);
  KvView v;
  v.dtype = dtype_;
  v.k = data_.get() + head_index(layer, page, 0, 0) * size_t(head_dim_) * elem_size_;
  v.v = data_.get() + head_index(layer, page, 1, 0) * size_t(head_dim_) * elem_size_;
  v.pos_stride = head_dim_;
  v.head_stride = page_size_ * head_dim_;
  if (!scales_.empty()) {
    v.k_scale = scales_.data() + head_index(layer, page, 0, 0);
    v.v_scale = scales_.data() + head_index(layer, page, 1, 0);
    v.scale_pos_stride = 1;
    v.scale_head_stride = page_size_;
  }
  if (paged) {
    v.pages = seq.pages.data();
    v.page_shift = page_shift_;
    v.scale_page_stride = int64_t(head_index(0, 1, 0, 0));  // rows of one page: 2 · heads · page_size
    v.page_stride = v.scale_page_stride * head_dim_;
  }
  return v;
}

}  // namespace lowbit
