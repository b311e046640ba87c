// Shared by the format files: reading a layer's companion tensors with errors that name the
// file, the tensor and the layer's scheme, and the grouping of fused modules.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "formats/format.h"

namespace lowbit::formats {

// Reads `<prefix>.<suffix>` tensors for one layer. `what` says which format and type asked,
// e.g. "msmodelslim W8A8", so a missing or malformed companion is explained in context.
class LayerReader {
 public:
  LayerReader(const Checkpoint& ckpt, std::string prefix, std::string what)
      : ckpt_(ckpt), prefix_(std::move(prefix)), what_(std::move(what)) {}

  bool has(std::string_view suffix) const { return ckpt_.has(name(suffix)); }
  std::string name(std::string_view suffix) const { return prefix_ + "." + std::string(suffix); }
  // Missing tensor: "DIR: layer 'P' (WHAT) needs tensor 'P.S', which is not in the checkpoint".
  TensorView get(std::string_view suffix) const;
  // get + dtype check (empty list = any dtype).
  TensorView get(std::string_view suffix, std::initializer_list<DType> dtypes) const;
  // get + dtype + exact shape.
  TensorView get(std::string_view suffix, std::initializer_list<DType> dtypes, const std::vector<int64_t>& shape) const;
  // "FILE: tensor 'P.S' (WHAT): MESSAGE".
  [[noreturn]] void fail_tensor(std::string_view suffix, std::string_view message) const;
  const std::string& prefix() const { return prefix_; }
  const std::string& what() const { return what_; }

 private:
  const Checkpoint& ckpt_;
  std::string prefix_, what_;
};

inline constexpr std::initializer_list<DType> kFloatTypes = {DType::BF16, DType::F16, DType::F32};

std::string shape_string(const std::vector<int64_t>& shape);
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Linear-layer prefixes: every tensor name ending in one of `suffixes` (".weight"), minus it.
std::vector<std::string> prefixes_with_suffix(const std::vector<std::string>& names,
                                              std::initializer_list<std::string_view> suffixes);

// A MoE expert's module prefix "<parent>.experts.<e>.<leaf>" split into its parts
// ("model.layers.3.mlp.experts", 17, "gate_proj"); nullopt for any other prefix.
struct ExpertPrefix {
  std::string experts;
  int64_t index = 0;
  std::string leaf;
};
std::optional<ExpertPrefix> parse_expert_prefix(std::string_view prefix);

// Groups of prefixes that must share one scheme, each with at least two members:
// {q,k,v}_proj of one parent, {gate,up}_proj of one parent, and every projection under
// "<layer>.experts.<E>." of one MoE layer. Sorted, deterministic.
std::vector<std::vector<std::string>> fused_groups(const std::vector<std::string>& prefixes);

// Same math and same origin (origin names the format's type or config group).
bool same_spec(const SchemeSpec& a, const SchemeSpec& b);

// The default Format::check_fused: errors with "WHERE: fused modules must share one scheme:
// 'A' is X but 'B' is Y".
void check_same_spec(const Format& format, std::span<const std::string> prefixes, std::string_view where);

// For an unquantized linear layer: `<prefix>.weight` in a float dtype, `<prefix>.bias` if asked.
LinearTensors float_tensors(const Checkpoint& ckpt, const std::string& prefix, bool has_bias, std::string_view what);
SchemeSpec float_spec(std::string origin);

}  // namespace lowbit::formats
