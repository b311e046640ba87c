#include "tokenizer/post_processor.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace lowbit {
namespace {

void add(const nlohmann::json& spec, std::string_view label, PostProcessor& out) {
  if (spec.is_null()) return;
  std::string type = spec.value("type", std::string());
  if (type == "ByteLevel") return;  // only trims offsets
  if (type == "Sequence") {
    for (const auto& sub : spec.at("processors")) add(sub, label, out);
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    // {"cls": ["<s>", 0], "sep": ["</s>", 2]} -> cls A sep
    out.prefix.insert(out.prefix.begin(), spec.at("cls").at(1).get<int32_t>());
    out.suffix.push_back(spec.at("sep").at(1).get<int32_t>());
    return;
  }
  if (type == "TemplateProcessing") {
    bool seen_a = false;
    std::vector<int32_t> before, after;
    for (const auto& item : spec.at("single")) {
      if (item.contains("Sequence")) {
        if (seen_a) fail("{}: TemplateProcessing 'single' has two sequences", label);
        seen_a = true;
      } else if (item.contains("SpecialToken")) {
        std::string name = item["SpecialToken"].at("id").get<std::string>();
        const auto& specials = spec.at("special_tokens");
        if (!specials.contains(name)) {
          fail("{}: TemplateProcessing uses undefined special token '{}'", label, name);
        }
        auto& target = seen_a ? after : before;
        for (const auto& id : specials[name].at("ids")) target.push_back(id.get<int32_t>());
      } else {
        fail("{}: TemplateProcessing item {} is not understood", label, item.dump());
      }
    }
    if (!seen_a) fail("{}: TemplateProcessing 'single' has no $A", label);
    // A later processor in a Sequence wraps the result of the earlier ones.
    out.prefix.insert(out.prefix.begin(), before.begin(), before.end());
    out.suffix.insert(out.suffix.end(), after.begin(), after.end());
    return;
  }
  fail(
      "{}: post_processor type '{}' is not supported (supported: TemplateProcessing, "
      "RobertaProcessing, BertProcessing, ByteLevel, Sequence)",
      label, type.empty() ? spec.dump() : type);
}

}  // namespace

PostProcessor PostProcessor::from_json(const nlohmann::json& spec, std::string_view label) {
  PostProcessor p;
  add(spec, label, p);
  return p;
}

}  // namespace lowbit
