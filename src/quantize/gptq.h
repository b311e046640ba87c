// GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
// Pre-trained Transformers") on one weight matrix: columns are quantized one at a time and
// each one's error is spread over the columns not yet quantized through the upper Cholesky
// factor of H⁻¹, in blocks with lazy batch updates (section 3.4 of the paper).
//
// GPTQ only chooses the integer codes; the format writers stay the single place that turns
// weights into tensors. So the result carries a weight matrix `writer_w` built such that the
// writer's own round-to-nearest quantizer (kernels/reference/quantize_ref.h) reproduces GPTQ's
// codes AND scales from it bit for bit: every value is its dequantized code, clamped to the
// group's range, and each group keeps the exact extreme values its scale was computed from
// (the "anchors"). A group whose codes never reach the extreme its anchor maps to gets that
// code forced on one element, or the writer would derive a smaller scale: GPTQ runs twice,
// the first pass forcing nothing and noting the element where forcing adds the least error,
// the second forcing there and spreading that error like any other (counted in `forced`;
// on SmolLM2 W4A16 g32 the loss ends ~2% above llm-compressor's, which stores scales
// directly). A format-writer entry point taking precomputed scales would remove this.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/reference/quantize_ref.h"
#include "quantize/quant_plan.h"

namespace lowbit {
class ThreadPool;
}

namespace lowbit::quantize {

// The integer grid a writer quantizes one layer's weights onto, mirrored exactly.
struct IntGrid {
  enum class Rule {
    CtSym,    // compressed-tensors symmetric: s = amax / 7.5 (or 127.5)
    CtAsym,   // compressed-tensors asymmetric: range forced to include 0, signed zero point
    QMaxSym,  // msmodelslim: s = max(amax / qmax, 2^-23), codes in [-qmax, qmax] in practice
    Awq,      // AutoAWQ: unsigned 0..15 with zero point, own min/max, weights rounded to F16
  };
  Rule rule = Rule::CtSym;
  int bits = 4;
  int64_t group_size = 0;  // along K; 0 = one group per row (per channel)
  ComputeDType compute = ComputeDType::F32;
};

// The grid `layer` is written with under `format` for a checkpoint of `weight_dtype`, or
// nullopt with `why_not` set when the scheme is not a plain integer-weight scheme GPTQ can
// drive (FP8, MX, msmodelslim's two-level per-group W4A8).
std::optional<IntGrid> int_grid_for(OutFormat format, const LayerPlan& layer, DType weight_dtype, std::string* why_not);

enum class ActOrder {
  None,
  // Columns in descending diag(H); groups are contiguous in that order, so the checkpoint
  // needs g_idx (compressed-tensors actorder "group"). Scales at each group's start.
  Group,
  // Columns in descending diag(H), groups stay the checkpoint's contiguous ones: needs
  // scales fixed before GPTQ starts (static groups). llm-compressor's default ("static").
  Static,
};

struct GptqOptions {
  double damp = 0.01;       // added to diag(H): damp · mean(diag(H))
  int64_t block = 128;      // lazy-update block (rounded to whole groups)
  ActOrder act_order = ActOrder::None;
  // Scales and zero points of every group computed from the original weights before GPTQ
  // starts (llm-compressor, AutoGPTQ static_groups) instead of from the already-updated
  // weights when the group's first column is reached (the paper's reference code).
  bool static_groups = false;
  // Shrink each group's range (factors 1 → 0.7) to the one with the least diag(H)-weighted
  // rounding error before GPTQ uses it (llm-compressor's "mse" observer, weighted); the
  // writers store the clipped scale exactly. Off: min-max, as llm-compressor's default.
  bool scale_search = false;
};

struct GptqResult {
  int64_t n = 0, k = 0;
  // [N, K]: hand this to the format writer. In checkpoint column order, except under
  // ActOrder::Group where column p is input column perm[p] (the writer then sees contiguous
  // groups in activation order, as g_idx describes them).
  std::vector<float> writer_w;
  std::vector<int8_t> q;       // [N, K] codes, same column order as writer_w
  std::vector<float> dequant;  // [N, K] (q - zero) · scale, in CHECKPOINT column order
  std::vector<float> scale;    // [N, G] (G groups per row)
  std::vector<float> zero;     // [N, G]; zeros for symmetric grids
  std::vector<int32_t> perm;   // processing order: perm[p] = input column; empty = identity
  double loss = 0;             // Σ (w - ŵ)² / [H⁻¹]ₚₚ² / 2, as GPTQ reports it
  int64_t forced = 0;          // codes forced to a group's extreme (see top of file)
  int64_t dead_columns = 0;    // diag(H) == 0: weight set to 0, as the reference does
};

// H: [K, K] row-major (2/n Σ x xᵀ), symmetric. Throws an Error naming `layer` when H + damp
// is not positive definite (suggesting a larger --gptq-damp). Rows are split over `pool`.
GptqResult gptq_quantize(const std::string& layer, const float* w, int64_t n, int64_t k, const std::vector<double>& h,
                         const IntGrid& grid, const GptqOptions& o, ThreadPool& pool);

// Σ over rows of (w - ŵ) H (w - ŵ)ᵀ: with H = 2/n Σ x xᵀ this is 2/n ‖X Wᵀ - X Ŵᵀ‖², the
// layer output error GPTQ minimises (tests compare it with round to nearest's).
double output_sq_error(const float* w, const float* w_hat, int64_t n, int64_t k, const std::vector<double>& h);

}  // namespace lowbit::quantize
