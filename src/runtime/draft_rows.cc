#include "runtime/draft_rows.h"

#include <algorithm>

#include "core/error.h"

namespace lowbit {

void DraftRows::clear() {
  rows_.clear();
  ids_.clear();
  added_hidden_.clear();
}

void DraftRows::add(Sequence& seq, int64_t start, std::span<const int32_t> ids, std::span<const float> hidden,
                    bool set_draft) {
  if (start != seq.state.mtp_done)
    fail("NEXTN: MTP rows of request {} start at position {}, but the head's KV ends at {}", seq.id(), start,
         seq.state.mtp_done);
  seq.state.mtp_done = start + int64_t(ids.size());
  rows_.push_back({&seq, start, int64_t(ids_.size()), int64_t(ids.size()), set_draft});
  ids_.insert(ids_.end(), ids.begin(), ids.end());
  added_hidden_.insert(added_hidden_.end(), hidden.begin(), hidden.end());
}

void DraftRows::run(DecoderModel& model, KvCache& cache, ThreadPool& pool) {
  if (rows_.empty()) return;
  const int64_t H = model.config().hidden_size, V = model.config().vocab_size;
  // Drafting rows first: forward_mtp computes logits for the first `drafting` chunks only.
  // Chunks are independent of each other (the engine's batch invariance), so order is free.
  const auto drafting =
      size_t(std::stable_partition(rows_.begin(), rows_.end(), [](const Row& r) { return r.set_draft; }) - rows_.begin());
  chunks_.clear();
  hidden_.clear();
  for (const Row& r : rows_) {  // ids_ no longer grows: spans into it stay valid
    chunks_.push_back({.slot = 0,
                       .start_pos = r.start,
                       .tokens = std::span(ids_).subspan(size_t(r.first_id), size_t(r.count)),
                       .all_logits = false,
                       .pages = r.seq->state.kv_pages});
    // A row's hidden values sit at the same index as its ids (H floats per id).
    const auto from = added_hidden_.begin() + r.first_id * H;
    hidden_.insert(hidden_.end(), from, from + r.count * H);
  }
  model.forward_mtp(chunks_, hidden_, cache, pool, logits_, drafting);
  for (size_t i = 0; i < drafting; ++i) {
    const float* row = logits_.data() + int64_t(i) * V;
    rows_[i].seq->state.draft = int32_t(std::max_element(row, row + V) - row);
  }
}

}  // namespace lowbit
