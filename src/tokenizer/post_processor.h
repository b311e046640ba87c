// Post-processors of tokenizer.json, for a single sequence: the ids added before and after
// the encoded text when encode(..., add_special_tokens=true). Supports TemplateProcessing,
// RobertaProcessing, BertProcessing, ByteLevel (adds nothing) and Sequence.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string_view>
#include <vector>

namespace lowbit {

struct PostProcessor {
  std::vector<int32_t> prefix;
  std::vector<int32_t> suffix;

  static PostProcessor from_json(const nlohmann::json& spec, std::string_view label);
};

}  // namespace lowbit
