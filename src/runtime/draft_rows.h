// The MTP head's rows of one engine step (NEXTN speculative decoding, models/decoder.h
// forward_mtp): every sequence that prefilled a chunk or verified a draft this step adds the
// rows its MTP KV needs (ids shifted left by one, the main forward's hidden rows), and one
// batched forward_mtp call runs them all; a sequence that wants its next draft gets the argmax
// of its last row.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "models/decoder.h"
#include "runtime/sequence.h"

namespace lowbit {

class DraftRows {
 public:
  void clear();
  bool empty() const { return rows_.empty(); }
  // Rows for positions start.. of seq, ids[i] at start + i, hidden row first_hidden + i of the
  // main forward's `hidden`. With set_draft, seq.state.draft becomes the last row's argmax.
  void add(Sequence& seq, int64_t start, std::span<const int32_t> ids, int64_t first_hidden, bool set_draft);
  void run(DecoderModel& model, KvCache& cache, ThreadPool& pool, const std::vector<float>& hidden);

 private:
  struct Row {
    Sequence* seq;
    int64_t start, first_id, count, first_hidden;
    bool set_draft;
  };
  std::vector<Row> rows_;
  std::vector<int32_t> ids_;
  std::vector<SequenceChunk> chunks_;
  std::vector<float> hidden_, logits_;
};

}  // namespace lowbit
