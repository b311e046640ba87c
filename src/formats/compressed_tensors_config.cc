#include "formats/compressed_tensors_config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <fmt/format.h>
#include <pcre2.h>

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "io/config_fields.h"
#include "io/json_util.h"

namespace lowbit::formats {

using nlohmann::json;

struct CtRegex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

CtRegex::CtRegex(std::string_view pattern, std::string_view where) : code_(std::make_unique<Code>()) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  code_->code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF, &err, &offset, nullptr);
  if (!code_->code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("{}: invalid regular expression '{}' at offset {}: {}", where, pattern, offset,
         reinterpret_cast<const char*>(msg));
  }
}
CtRegex::~CtRegex() = default;
CtRegex::CtRegex(CtRegex&&) noexcept = default;

bool CtRegex::match(std::string_view s) const {
  // Python re.match: anchored at the start, free at the end.
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  const int rc =
      pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, PCRE2_ANCHORED, md, nullptr);
  pcre2_match_data_free(md);
  return rc >= 0;
}

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<CtPattern> parse_patterns(const json& list, const std::string& where) {
  if (!list.is_array()) fail("{} must be a list of strings, got {}", where, json_type_name(list));
  std::vector<CtPattern> out;
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_string()) fail("{}[{}] must be a string, got {}", where, i, json_type_name(list[i]));
    CtPattern p;
    p.text = list[i].get<std::string>();
    if (p.text.starts_with("re:")) p.regex.emplace(std::string_view(p.text).substr(3), fmt::format("{}[{}]", where, i));
    out.push_back(std::move(p));
  }
  return out;
}

CtArgs parse_args(const json& j, const std::string& label, const std::string& path) {
  ConfigFields f(j, label, path + ".");
  CtArgs a;
  a.where = path;
  a.num_bits = f.opt_int("num_bits").value_or(8);
  if (a.num_bits < 1 || a.num_bits > 32) f.fail_field("num_bits", fmt::format("= {} is out of range", a.num_bits));
  const std::string type = f.opt_string("type").value_or("int");
  if (type != "int" && type != "float")
    f.fail_field("type", fmt::format("= '{}', expected \"int\" or \"float\"", type));
  a.is_float = type == "float";
  a.symmetric = f.opt_bool("symmetric").value_or(true);
  const std::optional<int64_t> group = f.opt_int("group_size");
  if (group && *group < -1) f.fail_field("group_size", fmt::format("= {} is invalid", *group));
  if (const json* b = f.find("block_structure")) {
    if (!b->is_array() || b->size() != 2 || !(*b)[0].is_number_integer() || !(*b)[1].is_number_integer() ||
        (*b)[0].get<int64_t>() <= 0 || (*b)[1].get<int64_t>() <= 0)
      f.fail_field("block_structure",
                   fmt::format("= {} must be a list of two positive ints [rows, cols]", json_excerpt(*b)));
    a.block_structure = {(*b)[0].get<int64_t>(), (*b)[1].get<int64_t>()};
  }
  // Strategy inference as in QuantizationArgs.validate_model_after.
  if (auto s = f.opt_string("strategy")) {
    a.strategy = *s;
  } else {
    a.strategy = !group ? "tensor" : *group == -1 ? "channel" : "group";
  }
  static const char* kStrategies[] = {"tensor", "channel", "group", "block", "token", "tensor_group", "attn_head"};
  if (std::find(std::begin(kStrategies), std::end(kStrategies), a.strategy) == std::end(kStrategies))
    f.fail_field("strategy", fmt::format("= '{}' is not a compressed-tensors strategy", a.strategy));
  if (a.strategy == "group" || a.strategy == "tensor_group") {
    if (!group || *group <= 0) f.fail_field("group_size", fmt::format("must be > 0 for strategy '{}'", a.strategy));
    a.group_size = *group;
  }
  if (a.strategy == "block" && a.block_structure.empty())
    f.fail_field("block_structure", "is required for strategy 'block'");
  if (const json* d = f.find("dynamic")) {
    if (d->is_boolean()) {
      a.dynamic = d->get<bool>();
    } else if (d->is_string() && d->get<std::string>() == "local") {
      a.dynamic = true;
    } else {
      f.fail_field("dynamic", fmt::format("= {} must be true, false or \"local\"", json_excerpt(*d)));
    }
  }
  if (const json* o = f.find("actorder")) {
    // true and "dynamic" were aliases of "group" in older releases; "static" of "weight".
    if (o->is_boolean()) {
      a.actorder = o->get<bool>() ? "group" : "";
    } else if (o->is_string()) {
      const std::string v = lower(o->get<std::string>());
      if (v != "group" && v != "weight" && v != "static" && v != "dynamic")
        f.fail_field("actorder", fmt::format("= '{}' is not an activation ordering", v));
      a.actorder = v == "dynamic" ? "group" : v == "static" ? "weight" : v;
    } else {
      f.fail_field("actorder", fmt::format("must be a string or boolean, got {}", json_type_name(*o)));
    }
  }
  return a;
}

}  // namespace

CtConfig parse_ct_config(const json& qc, std::string label) {
  CtConfig c;
  c.label = std::move(label);
  ConfigFields f(qc, c.label, "quantization_config.");
  const std::optional<std::string> global_format = f.opt_string("format");
  if (auto status = f.opt_string("quantization_status"); status && *status != "compressed")
    f.fail_field("quantization_status", fmt::format("= '{}': only compressed checkpoints can be loaded", *status));
  // Features that change the math beyond a linear layer's scheme: refused, never ignored.
  for (std::string_view key : {"sparsity_config", "transform_config", "kv_cache_scheme"}) {
    const json* v = f.find(key);
    if (v && !(v->is_object() && v->empty())) f.fail_field(key, "is not supported (only empty or null)");
  }
  if (const json* ig = f.find("ignore"))
    c.ignore = parse_patterns(*ig, c.label + ": field 'quantization_config.ignore'");
  const json* groups = f.find("config_groups");
  if (!groups || !groups->is_object() || groups->empty()) f.fail_field("config_groups", "must be a non-empty object");
  for (const auto& [name, g] : groups->items()) {
    const std::string path = "quantization_config.config_groups." + name;
    ConfigFields gf(g, c.label, path + ".");
    CtGroup group;
    group.name = name;
    const json* targets = gf.find("targets");
    if (!targets) gf.fail_field("targets", "is required");
    group.targets = parse_patterns(*targets, fmt::format("{}: field '{}.targets'", c.label, path));
    if (const json* w = gf.find("weights")) group.weights = parse_args(*w, c.label, path + ".weights");
    if (const json* a = gf.find("input_activations"))
      group.input = parse_args(*a, c.label, path + ".input_activations");
    if (gf.find("output_activations")) gf.fail_field("output_activations", "is not supported (output quantization)");
    // compressed-tensors >= 0.10 lets each scheme carry its own `format`; the global one is
    // then "mixed-precision" when they differ (quant_scheme.py, quant_config.py).
    if (auto fmt_name = gf.opt_string("format")) {
      group.format = *fmt_name;
    } else if (global_format && *global_format != "mixed-precision") {
      group.format = *global_format;
    } else {
      gf.fail_field("format", fmt::format("is required when quantization_config.format is {}",
                                          global_format ? "'mixed-precision'" : "absent"));
    }
    c.groups.push_back(std::move(group));
  }
  return c;
}

const CtPattern* ct_ignored_by(const CtConfig& c, std::string_view layer) {
  const std::string low = lower(layer);
  for (const CtPattern& p : c.ignore) {
    if (p.regex ? p.regex->match(layer) : low.find(lower(p.text)) != std::string::npos) return &p;
  }
  return nullptr;
}

CtMatch ct_match(const CtConfig& c, std::string_view layer) {
  // Two groups claiming one layer would make the answer depend on group order (SGLang takes
  // the first target in dict order); that is an error here, not a silent choice.
  auto first_of = [&](auto&& matches) {
    CtMatch found;
    for (const CtGroup& g : c.groups)
      for (const CtPattern& t : g.targets) {
        if (!matches(t)) continue;
        if (found.group && found.group != &g)
          fail("{}: layer '{}' matches targets of two config groups: '{}' in {} and '{}' in {}", c.label, layer,
               found.target->text, found.group->name, t.text, g.name);
        if (!found.group) found = {&g, &t};
      }
    return found;
  };
  CtMatch by_name = first_of([&](const CtPattern& t) { return t.regex ? t.regex->match(layer) : t.text == layer; });
  if (by_name.group) return by_name;
  // Every layer a format is asked about is a torch.nn.Linear in the Python model.
  return first_of([](const CtPattern& t) {
    return t.regex ? t.regex->match("Linear") : std::string("linear").find(lower(t.text)) != std::string::npos;
  });
}

}  // namespace lowbit::formats
