// The MTP head's rows of one engine step (NEXTN speculative decoding, models/decoder.h
// forward_mtp): every sequence that prefilled a chunk or verified a draft this step adds the
// rows its MTP KV needs (ids shifted left by one, the main forward's hidden rows), and one
// batched forward_mtp call runs them all; a sequence that wants its next draft gets the argmax
// of its last row. Only those rows go through the lm_head: the others just write the head's KV.
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
  // Rows for positions start.. of seq: ids[i] at start + i with the main forward's hidden row
  // hidden[i · H ..] (both copied). With set_draft, seq.state.draft becomes the last row's argmax.
  // The head attends to every earlier position, so start must be seq.state.mtp_done (an Error
  // otherwise: a row was skipped or repeated); mtp_done then moves past these rows.
  void add(Sequence& seq, int64_t start, std::span<const int32_t> ids, std::span<const float> hidden, bool set_draft);
  void run(DecoderModel& model, KvCache& cache, ThreadPool& pool);

 private:
  struct Row {
    Sequence* seq;
    int64_t start, first_id, count;
    bool set_draft;
  };
  std::vector<Row> rows_;
  std::vector<int32_t> ids_;
  std::vector<float> added_hidden_;  // rows in add() order
  std::vector<SequenceChunk> chunks_;
  std::vector<float> hidden_, logits_;  // in forward_mtp's order: drafting rows first
};

}  // namespace lowbit
