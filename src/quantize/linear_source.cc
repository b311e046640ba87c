#include "quantize/linear_source.h"

#include "core/error.h"
#include "formats/format_util.h"

namespace lowbit::quantize {

namespace {

struct FusedExpert {
  std::string tensor;  // "<layer>.mlp.experts.gate_up_proj" or "...down_proj"
  int64_t expert = 0;
  int part = 0;  // 0 gate (or down), 1 up: which half of gate_up_proj's rows
};

// "<layer>.mlp.experts.<e>.{gate,up,down}_proj" → the fused tensor that would hold it.
bool fused_expert_of(const std::string& prefix, FusedExpert* f) {
  const auto e = formats::parse_expert_prefix(prefix);
  if (!e || (e->leaf != "gate_proj" && e->leaf != "up_proj" && e->leaf != "down_proj")) return false;
  f->tensor = e->experts + (e->leaf == "down_proj" ? ".down_proj" : ".gate_up_proj");
  f->expert = e->index;
  f->part = e->leaf == "up_proj" ? 1 : 0;
  return true;
}

}  // namespace

TensorView linear_weight(const Checkpoint& ckpt, const std::string& prefix, int64_t n, int64_t k) {
  const std::string own = prefix + ".weight";
  FusedExpert f;
  if (ckpt.has(own) || !fused_expert_of(prefix, &f) || !ckpt.has(f.tensor))
    return ckpt.get(own, {DType::BF16, DType::F16, DType::F32}, {n, k});
  const TensorView all = ckpt.get(f.tensor);
  const bool gate_up = f.tensor.ends_with(".gate_up_proj");
  // [E, 2F, H] with F = n, H = k; or [E, H, F] with H = n, F = k.
  const int64_t rows = gate_up ? 2 * n : n;
  if (all.shape.size() != 3 || all.shape[1] != rows || all.shape[2] != k || f.expert >= all.shape[0])
    fail("{}: tensor '{}' has shape {}, but expert {}'s {} needs [E > {}, {}, {}]", ckpt.file_of(f.tensor), f.tensor,
         all.shape_str(), f.expert, prefix, f.expert, rows, k);
  if (all.dtype != DType::BF16 && all.dtype != DType::F16 && all.dtype != DType::F32)
    fail("{}: tensor '{}' is {}; lowbit quantize reads float (BF16, F16, F32) weights", ckpt.file_of(f.tensor),
         f.tensor, dtype_name(all.dtype));
  const size_t row_bytes = size_t(k) * dtype_size(all.dtype);
  const size_t offset = (size_t(f.expert) * size_t(rows) + size_t(f.part) * size_t(n)) * row_bytes;
  return TensorView{f.tensor + "[" + std::to_string(f.expert) + "]" + (gate_up ? (f.part ? " (up)" : " (gate)") : ""),
                    all.dtype, {n, k}, static_cast<const uint8_t*>(all.data) + offset};
}

std::vector<std::string> linear_weight_sources(const Checkpoint& ckpt, const std::string& prefix) {
  FusedExpert f;
  if (!ckpt.has(prefix + ".weight") && fused_expert_of(prefix, &f) && ckpt.has(f.tensor)) return {f.tensor};
  return {prefix + ".weight"};
}

}  // namespace lowbit::quantize
