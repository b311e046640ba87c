// compressed-tensors `quantization_config`: its config groups, QuantArgs and the rules that
// map a layer name to a group or to `ignore`. Parsing and matching only; compressed_tensors.cc
// turns the result into SchemeSpecs and tensors. Field names and defaults follow the
// compressed-tensors library (quantization/quant_args.py, quant_scheme.py, quant_config.py);
// matching follows SGLang (layers/quantization/compressed_tensors/utils.py).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::formats {

// One `weights` / `input_activations` object.
struct CtArgs {
  int64_t num_bits = 8;
  bool is_float = false;  // type "float" (else "int")
  bool symmetric = true;
  std::string strategy;                  // tensor | channel | group | block | token | tensor_group
  int64_t group_size = 0;                // 0 = none
  std::vector<int64_t> block_structure;  // [rows, cols] for strategy "block"
  bool dynamic = false;                  // true or "local"
  std::string actorder;                  // "" = none, else group | weight | static | dynamic
  std::string where;                     // "quantization_config.config_groups.group_0.weights", for messages
};

// A Python-`re.match` pattern (anchored at the start only) compiled with PCRE2.
class CtRegex {
 public:
  CtRegex(std::string_view pattern, std::string_view where);
  ~CtRegex();
  CtRegex(CtRegex&&) noexcept;
  CtRegex(const CtRegex&) = delete;
  CtRegex& operator=(const CtRegex&) = delete;
  bool match(std::string_view s) const;

 private:
  struct Code;
  std::unique_ptr<Code> code_;
};

// A `targets` or `ignore` entry: "re:<regex>" or a plain string.
struct CtPattern {
  std::string text;              // as written, for messages
  std::optional<CtRegex> regex;  // set for "re:" entries
};

struct CtGroup {
  std::string name;  // key in config_groups
  std::vector<CtPattern> targets;
  std::optional<CtArgs> weights, input;
  std::string format;  // the group's own `format`, else the global one
};

struct CtConfig {
  std::string label;            // ".../config.json: quantization_config", prefix of every message
  std::vector<CtGroup> groups;  // in config order
  std::vector<CtPattern> ignore;
};

// Validates and parses; an Error names config.json and the field.
CtConfig parse_ct_config(const nlohmann::json& qc, std::string label);

// SGLang's should_ignore_layer for one (unfused) name: a "re:" entry by re.match, a plain
// entry by case-insensitive substring. Returns the matching entry or nullptr.
const CtPattern* ct_ignored_by(const CtConfig& c, std::string_view layer);

// SGLang's find_matched_target for one (unfused) linear layer: first any target that equals
// the name or re.match-es it, across groups in order; then any target contained
// (case-insensitively) in the module class name "Linear". nullptr when none matches.
struct CtMatch {
  const CtGroup* group = nullptr;
  const CtPattern* target = nullptr;
};
CtMatch ct_match(const CtConfig& c, std::string_view layer);

}  // namespace lowbit::formats
