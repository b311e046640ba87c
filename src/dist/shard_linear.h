// Tensor-parallel sharding of one linear layer at load, Megatron style: a column-parallel
// layer (q/k/v, gate/up, lm_head) keeps a range of OUTPUT rows of W[N, K]; a row-parallel
// layer (o_proj, down_proj) keeps a range of INPUT columns and the caller all-reduces (sums)
// the partial outputs. Every role of every WeightEncoding (schemes/scheme_spec.h) is sliced
// along the dimension that indexes N or K in its own layout, so the result is exactly what a
// checkpoint of the smaller layer {local K, local N} would hold, and the scheme validates and
// repacks it as usual. Boundaries that would cut a quantization group, an MX/FP8 block or a
// packed byte/word are refused (shard_unit says which multiples are safe).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "formats/format.h"
#include "schemes/scheme_spec.h"

namespace lowbit::dist {

enum class ShardAxis { Replicated, Output, Input };
struct ShardSplit {
  ShardAxis axis = ShardAxis::Replicated;
  int64_t begin = 0, end = 0;  // Output: rows [begin,end) of N; Input: columns [begin,end) of K
  LinearShape full;            // the unsharded layer's {in_features K, out_features N}
  bool add_bias = true;        // Input axis: false on every rank but one (bias and W8A8 quant_bias
                               // are added once; see spec: "Under tensor parallelism only rank 0 adds quant_bias")
};
// This rank's part of one layer's tensors. Views into the checkpoint where the slice is contiguous
// (no copy), otherwise gathered into memory owned by the result's `storage`. The result passes the
// scheme's own validation with shape {local K, local N}. Error (lowbit::fail) naming the tensor, the
// scheme, the boundary and the reason when a boundary would split a quantization group, an MX/FP8 block,
// a packed int4/fp4 byte or int32 word, or when act-order g_idx makes a K slice reference groups outside
// its own range (a g_idx that is the trivial k/group_size inside the slice is fine: rebase it).
LinearTensors shard_linear_tensors(const SchemeSpec& spec, const LinearTensors& t, const ShardSplit& split);
// The multiple every boundary of `axis` must be for this spec (1 = any), so the caller (the lead's TP
// layout) can pick boundaries that never split a group: e.g. Input with group_size 128 → 128; MX → 32;
// Int4PackedInt32K Input → 8 (and group size); AWQ Output → 8; Int4PackedRowPairs Output → 2;
// Fp8Block → its block sizes; asymmetric pack-quantized zero points packed along N → Output 8.
int64_t shard_unit(const SchemeSpec& spec, ShardAxis axis);
// A Format whose tensors_for returns only this rank's slice of each layer, per `plan(prefix)`
// (Replicated → the base's tensors untouched). spec_for/check_fused/name pass through (name: base's
// name + "+tp"). It must work over every format, including make_online_quant_format's wrapper (float
// weights whose spec says a quantized kind: dispatch on the tensor's actual dtype/shape, not only on the spec).
std::unique_ptr<Format> make_sharded_format(std::unique_ptr<Format> base,
                                            std::function<ShardSplit(const std::string& prefix)> plan);

// The local shape of `split` ({local K, local N}); the full shape when Replicated.
LinearShape local_shape(const ShardSplit& split);

}  // namespace lowbit::dist
