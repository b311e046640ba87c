#include "io/qwen3_next_config.h"

#include <fmt/format.h>

#include "io/json_util.h"

namespace lowbit {

using nlohmann::json;

namespace {

int64_t positive_or(const ConfigFields& f, const char* key, int64_t fallback) {
  const int64_t v = f.opt_int(key).value_or(fallback);
  if (v <= 0) f.fail_field(key, fmt::format("must be positive, got {}", v));
  return v;
}

}  // namespace

void parse_qwen3_next(const ConfigFields& f, ModelConfig& c) {
  const int64_t L = c.num_hidden_layers;
  const int64_t interval = positive_or(f, "full_attention_interval", 4);
  std::vector<bool> by_interval(static_cast<size_t>(L));
  for (int64_t i = 0; i < L; ++i) by_interval[size_t(i)] = (i + 1) % interval != 0;

  if (const json* types = f.find("layer_types")) {
    if (!types->is_array() || int64_t(types->size()) != L)
      f.fail_field("layer_types", fmt::format("must be a list of {} strings (num_hidden_layers), got {}", L,
                                              json_excerpt(*types)));
    c.linear_attention_layers.resize(size_t(L));
    for (int64_t i = 0; i < L; ++i) {
      const json& t = (*types)[size_t(i)];
      if (t == "linear_attention")
        c.linear_attention_layers[size_t(i)] = true;
      else if (t == "full_attention")
        c.linear_attention_layers[size_t(i)] = false;
      else
        f.fail_field("layer_types", fmt::format("entry {} is {}; expected \"linear_attention\" or \"full_attention\"",
                                                i, json_excerpt(t)));
    }
    if (f.contains("full_attention_interval") && c.linear_attention_layers != by_interval)
      fmt::print(stderr, "warning: {}: layer_types disagrees with full_attention_interval {}; using layer_types\n",
                 f.label(), interval);
  } else {
    c.linear_attention_layers = by_interval;
  }

  LinearAttentionConfig& la = c.linear_attention;
  la.num_key_heads = positive_or(f, "linear_num_key_heads", 16);
  la.num_value_heads = positive_or(f, "linear_num_value_heads", 32);
  la.key_head_dim = positive_or(f, "linear_key_head_dim", 128);
  la.value_head_dim = positive_or(f, "linear_value_head_dim", 128);
  la.conv_kernel = positive_or(f, "linear_conv_kernel_dim", 4);
  if (la.num_value_heads % la.num_key_heads != 0)
    f.fail_field("linear_num_value_heads", fmt::format("({}) must be a multiple of linear_num_key_heads ({})",
                                                       la.num_value_heads, la.num_key_heads));
  c.shared_expert_intermediate_size = f.opt_int("shared_expert_intermediate_size").value_or(512);
  if (c.shared_expert_intermediate_size < 0)
    f.fail_field("shared_expert_intermediate_size",
                 fmt::format("must be >= 0, got {}", c.shared_expert_intermediate_size));
}

}  // namespace lowbit
