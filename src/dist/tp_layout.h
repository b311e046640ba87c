// Which part of a model each tensor-parallel rank holds (Megatron style): contiguous ranges of
// query heads, KV heads, MLP / expert intermediate channels and vocabulary rows, cut so that
// no boundary splits a head, a quantization group, an MX block or a packed word (`units`).
//
// Heads: with at least as many KV heads as ranks, whole GQA groups are dealt out, the first
// num_kv % tp ranks taking one more (9 heads in 3 groups over 2 ranks: 6 + 3). With fewer KV
// heads than ranks, ranks are dealt out over the groups (the first tp % num_kv groups taking
// one more) and each group's query heads are split among its ranks; every such rank keeps a
// replica of its group's one KV head (vLLM's rule when tp is a multiple of num_kv, extended to
// any tp ≤ num_heads). Each rank then runs plain GQA with a uniform group size.
//
// Vocabulary: lm_head is vocab-parallel (each rank reads 1/tp of the largest matrix of a
// small model and the logits are gathered, V floats per row wanted); the embedding is
// replicated: a lookup reads T rows, and a vocab-parallel embedding would cost an all-reduce
// of T × hidden per step for no saving in bytes read.
#pragma once

#include <cstdint>
#include <string>

namespace lowbit::dist {

struct Range {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// The dimensions that are split, and the boundary multiples the checkpoint's schemes need
// (1 = any; see shard_unit in dist/shard_linear.h).
struct TpDims {
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;
  int64_t intermediate = 0;         // dense MLP (0: none)
  int64_t moe_intermediate = 0;     // per expert (0: no MoE)
  int64_t vocab = 0;
  int64_t head_unit = 1;            // q_proj row and o_proj column boundaries must be multiples
  int64_t kv_head_unit = 1;         // k_proj/v_proj row boundaries
  int64_t intermediate_unit = 1;    // gate/up rows and down_proj K columns
  int64_t moe_intermediate_unit = 1;
  int64_t vocab_unit = 1;
};

struct TpLayout {
  int rank = 0, size = 1;
  Range q_heads, kv_heads;          // in heads
  Range intermediate, moe_intermediate, vocab;
  int64_t head_dim = 0;
  // Query heads per KV head on this rank (uniform).
  int64_t group() const { return q_heads.size() / kv_heads.size(); }
  std::string describe() const;  // "rank 1/2: heads 6-8 (kv 2-2), mlp 768-1535, vocab 24576-49151"
};

// Error naming tp-size and the dimension when the model cannot be split that way (more ranks
// than heads or units, a head boundary that is not a multiple of head_unit).
TpLayout make_tp_layout(const TpDims& dims, int rank, int size);

// [begin, end) of `rank` when `total` elements in multiples of `unit` are dealt out to `size`
// ranks as evenly as possible (the first ranks one unit more); total need not be a multiple
// of unit (the last range ends at total). Error naming `what` when there are fewer units than
// ranks.
Range balanced_range(int64_t total, int64_t unit, int rank, int size, const std::string& what);

}  // namespace lowbit::dist
