// One model's share of a tensor-parallel job (models/tp_group.h): which slices this rank
// holds (dist/tp_layout.h), the plan the sharded format loads them by, the all-reduce after
// each row-parallel layer (o_proj, down_proj, the experts' down projections summed first),
// compressed to INT8 on prefill/extend batches when asked, and the gather of vocab-parallel
// logits. Models call reduce_add where a single process would add to the residual.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dist/compressed_allreduce.h"
#include "dist/link_model.h"
#include "dist/shard_linear.h"
#include "dist/tp_layout.h"
#include "io/model_config.h"
#include "models/tp_group.h"

namespace lowbit {

class Format;

// What the all-reduces did since load (bench reports it; `auto` shows its choices here).
struct TpCounters {
  int64_t fp32 = 0, int8_allgather = 0, int8_rs_ag = 0;  // all-reduces by method
  double seconds = 0;                                     // in all-reduces (this rank's wall time)
  double bytes_sent = 0;                                  // per rank, as the spec counts them
};

class TensorParallel {
 public:
  // Splits `config` over the group's ranks with boundaries that suit every layer's scheme
  // (read from `format`); errors name the tp-size and the dimension or layer that cannot be
  // split. Refuses what is not implemented (Gated DeltaNet layers, fused 3-D expert tensors).
  TensorParallel(TpGroup& group, const ModelConfig& config, const Format& format);

  TpGroup& group() { return group_; }
  const dist::TpLayout& layout() const { return layout_; }
  // The model as this rank runs it: local heads, KV heads and intermediate sizes.
  ModelConfig local_config() const;
  // The format's split of one linear layer (prefix without ".weight").
  dist::ShardSplit split_for(const std::string& prefix) const;

  // Collective, once after load: with `auto`, measures the link (dist::LinkModel).
  void calibrate();
  // residual[m, H] += Σ over ranks of partial[m, H] (partial is clobbered), in the order of the
  // uncompressed path. `extend`: the batch holds a prompt chunk (prefill/extend), the only
  // batches compression applies to.
  void reduce_add(float* partial, float* residual, int64_t m, bool extend);
  // logits[rows, V] from this rank's [rows, vocab slice] (every rank ends with all of it).
  void gather_vocab(const float* local, int64_t rows, std::vector<float>& logits);

  const TpCounters& counters() const { return counters_; }
  std::string describe() const;

 private:
  dist::TpReduce method_for(int64_t m, bool extend) const;

  TpGroup& group_;
  ModelConfig config_;
  dist::TpLayout layout_;
  dist::TpAllReduce all_reduce_;
  dist::LinkModel link_;
  TpCounters counters_;
  std::vector<dist::Range> vocab_of_rank_;  // every rank's lm_head rows, from the same layout
  std::vector<float> gathered_;
  std::vector<int64_t> counts_, displs_;
};

}  // namespace lowbit
