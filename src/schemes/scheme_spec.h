// A scheme spec is a pure description of how one linear layer is stored in a checkpoint and
// what math it implies: what a format found, with nothing about hardware. Kernel choice
// happens later, in the scheme (see ../shared/spec/quantization.md for every scheme's math).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "core/tensor.h"

namespace lowbit {

enum class SchemeKind {
  Float,        // plain matmul
  W8A8Static,   // int8 sym weights, int8 asym per-tensor calibrated activations (msmodelslim W8A8)
  W8A8Dynamic,  // int8 sym per-channel weights, int8 sym per-token dynamic activations
  W4A4Dynamic,  // int4 sym per-channel weights, int4 sym per-token dynamic activations
  W4A8Dynamic,  // int4 weights (per-channel, optionally × per-group), int8 per-token activations
  W4A16,        // int4 weights per group along K (+ zero points), float activations
  Mxfp8,        // E4M3 weights and activations, E8M0 scale per 32 along K
  Mxfp4,        // E2M1 weights, E8M0 per 32; activations MXFP8 (W4A8_MXFP) or MXFP4 (W4A4_MXFP4)
  Fp8Block,     // E4M3 weights with fp32 scale per 128×128 block; activations per-token-group fp8
  // compressed-tensors int-quantized with static activations: unlike msmodelslim's W8A8 the
  // scales are not folded. weight_scale per channel [N,1] or per tensor [1], input_scale [1],
  // and input_zero [1] only if activation.symmetric is false. There is no quant_bias or
  // deq_scale: y = (Σ_k (xq − zp)·wq) · s_x · s_w[n] (+ bias).
  W8A8StaticUnfolded,
  // E4M3 weights with a float scale per tensor [1] or per channel [N,1] (weight.granularity);
  // activations (if any) E4M3 per-token dynamic or per-tensor static with input_scale [1];
  // no activation args = weight-only FP8 (compressed-tensors FP8 / FP8_DYNAMIC presets).
  Fp8,
};

enum class NumKind { Int, FloatE4M3, FloatE2M1 };
enum class Granularity { Tensor, Channel, Token, Group, Block };

struct QuantArgs {
  int bits = 8;
  NumKind kind = NumKind::Int;
  Granularity granularity = Granularity::Channel;
  int64_t group_size = 0;   // Group/Block: elements along K per scale (MX: 32)
  int64_t block_rows = 0;   // 2-D Block (Fp8Block): output rows per block; 0 = 1-D blocks along K (MX)
  bool symmetric = true;
  bool dynamic = false;     // activations: scale computed at run time
};

// How the `weight` tensor's integer/fp4 codes sit in memory. Formats name it; schemes decode
// any of them into their own kernel layout once, at load.
enum class WeightEncoding {
  Native,             // BF16/F16/F32 floats, or int8 / fp8 codes one per element, [N, K]
  Int4InInt8,         // int8 [N, K] holding values in [-8, 7] (msmodelslim W4A4, old W4A8)
  Int4PackedRowPairs, // int8 [N/2, K]: low nibble row 2j, high nibble row 2j+1, two's complement (msmodelslim v1.0.0 W4A8)
  Int4PackedInt32K,   // int32 [N, ceil(K/8)]: element k at bits 4·(k%8), stored as q+8 (compressed-tensors pack-quantized)
  //   Asymmetric: weight_zero int32 [ceil(N/8), ceil(K/g)] packed the same way along N, also +8.
  Int4AwqGemm,        // int32 [K, N/8], AutoAWQ nibble order [0,2,4,6,1,3,5,7], unsigned 0..15 (AWQ GEMM)
  //   Transposed vs HF: weight_zero int32 [K/g, N/8] (same nibble order, zeros 0..15 as-is) and
  //   weight_scale [K/g, N] fp16; w[k,n] = (q[k,n] − z[k/g,n]) · s[k/g,n].
  Fp4PackedK,         // uint8 [N, K/2]: low nibble = even k (E2M1 codes)
};

// Which MX scale rule produced (or will produce) E8M0 exponents; checkpoint scales are always
// decoded, never recomputed, so this matters only for online quantization and for tests.
enum class MxScaleRule { Ocp, MsModelSlimFp8, MsModelSlimFp4 };

struct SchemeSpec {
  SchemeKind kind = SchemeKind::Float;
  QuantArgs weight;
  std::optional<QuantArgs> activation;
  WeightEncoding encoding = WeightEncoding::Native;
  // W4A16 with compressed-tensors actorder "group": role weight_g_idx int32 [K] gives the
  // group of input column k (scales are indexed by g_idx[k], not k / group_size).
  bool has_g_idx = false;
  std::string origin;  // where the spec came from, for logs: "hf:float", "msmodelslim:W8A8", "compressed-tensors:group_0"
};

// A linear layer's tensors under canonical role names, shared by every format:
//   weight, weight_scale, weight_zero, weight_scale_second and weight_zero_second (W4A8
//   per-group), weight_g_idx, input_scale, input_zero, bias, quant_bias (W8A8 static),
//   deq_scale (W8A8 static: fp32 [N], or I64 [N] holding the fp32 bit pattern in its low 32
//   bits; formats hand over the on-disk dtype and the scheme decodes)
// Formats translate their own names into these roles; schemes validate shapes and dtypes.
struct LinearTensors {
  std::string prefix;  // "model.layers.0.self_attn.q_proj", for error messages
  TensorView weight;
  std::optional<TensorView> bias;
  std::map<std::string, TensorView> extra;  // every other role, by canonical name
  // Memory behind views that are not the checkpoint's own bytes (a tensor-parallel slice that
  // had to be gathered, e.g. the K columns of a row-parallel weight). A scheme that reads its
  // weight in place (FLOAT) keeps it alive; schemes that repack may let it go after load. Null:
  // the views are the checkpoint's mapping, which FLOAT may copy (the caller then releases it).
  std::shared_ptr<const void> storage;

  const TensorView* find(const std::string& role) const {
    auto it = extra.find(role);
    return it == extra.end() ? nullptr : &it->second;
  }
};

struct LinearShape {
  int64_t in_features = 0, out_features = 0;
};

std::string_view scheme_kind_name(SchemeKind kind);

}  // namespace lowbit
