#include "runtime/draft_rows.h"

#include <algorithm>

namespace lowbit {

void DraftRows::clear() {
  rows_.clear();
  ids_.clear();
}

void DraftRows::add(Sequence& seq, int64_t start, std::span<const int32_t> ids, int64_t first_hidden, bool set_draft) {
  rows_.push_back({&seq, start, int64_t(ids_.size()), int64_t(ids.size()), first_hidden, set_draft});
  ids_.insert(ids_.end(), ids.begin(), ids.end());
}

void DraftRows::run(DecoderModel& model, KvCache& cache, ThreadPool& pool, const std::vector<float>& hidden) {
  if (rows_.empty()) return;
  const int64_t H = model.config().hidden_size, V = model.config().vocab_size;
  chunks_.clear();
  hidden_.clear();
  for (const Row& r : rows_) {  // ids_ no longer grows: spans into it stay valid
    chunks_.push_back({.slot = 0,
                       .start_pos = r.start,
                       .tokens = std::span(ids_).subspan(size_t(r.first_id), size_t(r.count)),
                       .all_logits = false,
                       .pages = r.seq->state.kv_pages});
    hidden_.insert(hidden_.end(), hidden.begin() + r.first_hidden * H, hidden.begin() + (r.first_hidden + r.count) * H);
  }
  model.forward_mtp(chunks_, hidden_, cache, pool, logits_);
  for (size_t i = 0; i < rows_.size(); ++i) {
    if (!rows_[i].set_draft) continue;
    const float* row = logits_.data() + int64_t(i) * V;
    rows_[i].seq->state.draft = int32_t(std::max_element(row, row + V) - row);
  }
}

}  // namespace lowbit
