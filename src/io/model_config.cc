#include "io/model_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <utility>

#include "core/error.h"
#include "io/config_fields.h"
#include "io/json_util.h"
#include "io/qwen3_next_config.h"
#include "io/rope_config.h"

namespace lowbit {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::array<std::pair<std::string_view, Architecture>, 4> kArchitectures = {{
    {"Qwen3ForCausalLM", Architecture::Qwen3},
    {"LlamaForCausalLM", Architecture::Llama},
    {"Qwen3MoeForCausalLM", Architecture::Qwen3Moe},
    {"Qwen3NextForCausalLM", Architecture::Qwen3Next},
}};

std::string supported_architectures() {
  std::string out;
  for (const auto& [name, arch] : kArchitectures)
    out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

Architecture parse_architecture(const ConfigFields& f, std::string& name) {
  const json* list = f.find("architectures");
  if (!list)
    f.fail_field("architectures",
                 fmt::format("is missing (supported: {})", supported_architectures()));
  if (!list->is_array() || list->empty() || !(*list)[0].is_string())
    f.fail_field("architectures",
                 fmt::format("must be a non-empty list of strings, got {}", json_excerpt(*list)));
  name = (*list)[0].get<std::string>();
  for (const auto& [known, arch] : kArchitectures)
    if (known == name) return arch;
  f.fail_field("architectures", fmt::format("names unsupported architecture '{}' (supported: {})",
                                            name, supported_architectures()));
}

// `dtype` (transformers v5) wins over the older `torch_dtype`.
DType parse_torch_dtype(const ConfigFields& f) {
  const char* key = f.find("dtype") ? "dtype" : "torch_dtype";
  std::optional<std::string> s = f.opt_string(key);
  if (!s) return DType::F32;  // transformers loads float32 when the config is silent
  std::string_view v = *s;
  if (v.starts_with("torch.")) v.remove_prefix(6);
  if (v == "bfloat16") return DType::BF16;
  if (v == "float16" || v == "half") return DType::F16;
  if (v == "float32" || v == "float") return DType::F32;
  if (v == "float64" || v == "double") return DType::F64;
  f.fail_field(
      key, fmt::format("'{}' is not a known dtype (expected bfloat16, float16, float32 or float64)",
                       *s));
}

// Qwen3's layer_types marks layers i >= max_window_layers as sliding when
// use_sliding_window is set; our attention has no sliding window, so refuse such configs.
void check_no_sliding_window(const ConfigFields& f, int64_t num_layers) {
  if (const json* types = f.find("layer_types")) {
    if (!types->is_array()) f.fail_field("layer_types", "must be a list of strings");
    for (const json& t : *types)
      if (t != "full_attention")
        f.fail_field(
            "layer_types",
            fmt::format("contains {}; only full_attention layers are supported", json_excerpt(t)));
    return;
  }
  if (f.opt_bool("use_sliding_window").value_or(false) && f.find("sliding_window") &&
      f.opt_int("max_window_layers").value_or(28) < num_layers)
    f.fail_field("use_sliding_window", "is true: sliding-window attention is not supported");
}

void parse_sizes(const ConfigFields& f, ModelConfig& c) {
  c.hidden_size = f.required_positive("hidden_size");
  c.num_hidden_layers = f.required_positive("num_hidden_layers");
  c.num_attention_heads = f.required_positive("num_attention_heads");
  const bool next = c.arch == Architecture::Qwen3Next;
  const bool moe = c.arch == Architecture::Qwen3Moe || next;
  // Qwen3MoeConfig's and Qwen3NextConfig's defaults; only dense layers use intermediate_size.
  c.intermediate_size = moe ? f.opt_int("intermediate_size").value_or(next ? 5632 : 6144)
                            : f.required_positive("intermediate_size");
  if (c.intermediate_size <= 0)
    f.fail_field("intermediate_size", fmt::format("must be positive, got {}", c.intermediate_size));
  c.vocab_size = f.required_positive("vocab_size");

  // Qwen3Config's field default is 32; only an explicit null means "= num_attention_heads"
  // (LlamaConfig's default is null, so absent and null agree there).
  const bool qwen3_default_kv = c.arch == Architecture::Qwen3 && !f.contains("num_key_value_heads");
  const bool moe_default_kv = moe && !f.contains("num_key_value_heads");  // Qwen3MoeConfig: 4, Next: 2
  c.num_key_value_heads = f.opt_int("num_key_value_heads")
                              .value_or(qwen3_default_kv ? 32 : moe_default_kv ? (next ? 2 : 4) : c.num_attention_heads);
  if (c.num_key_value_heads <= 0)
    f.fail_field("num_key_value_heads",
                 fmt::format("must be positive, got {}", c.num_key_value_heads));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    f.fail_field("num_key_value_heads",
                 fmt::format("({}{}) must divide num_attention_heads ({})", c.num_key_value_heads,
                             qwen3_default_kv ? ", the Qwen3 default when absent"
                             : moe_default_kv ? ", the Qwen3-MoE default when absent"
                                              : "",
                             c.num_attention_heads));

  if (auto head_dim = f.opt_int("head_dim")) {
    c.head_dim = *head_dim;
  } else if (c.arch == Architecture::Qwen3 || next) {
    c.head_dim = next ? 256 : 128;  // Qwen3Config / Qwen3NextConfig defaults, independent of hidden_size
  } else {
    // Llama, and Qwen3-MoE (its config defaults head_dim to null = hidden_size / heads).
    if (c.hidden_size % c.num_attention_heads != 0)
      f.fail_field(
          "hidden_size",
          fmt::format("({}) is not a multiple of num_attention_heads ({}) and head_dim is absent",
                      c.hidden_size, c.num_attention_heads));
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  // RoPE rotates pairs of channels.
  if (c.head_dim <= 0 || c.head_dim % 2 != 0)
    f.fail_field("head_dim", fmt::format("must be positive and even, got {}", c.head_dim));

  const int64_t default_max_pos = c.arch == Architecture::Llama ? 2048 : 32768;
  c.max_position_embeddings = f.opt_int("max_position_embeddings").value_or(default_max_pos);
  if (c.max_position_embeddings <= 0)
    f.fail_field("max_position_embeddings",
                 fmt::format("must be positive, got {}", c.max_position_embeddings));
}

void parse_token_ids(const ConfigFields& f, ModelConfig& c) {
  // LlamaConfig defaults bos=1, eos=2 when the keys are absent (an explicit null is None).
  const bool llama = c.arch == Architecture::Llama;
  if (auto bos = f.opt_token_ids("bos_token_id")) {
    if (bos->size() != 1) f.fail_field("bos_token_id", "must be a single token id");
    c.bos_token_id = (*bos)[0];
  } else if (llama && !f.contains("bos_token_id")) {
    c.bos_token_id = 1;
  }
  if (auto eos = f.opt_token_ids("eos_token_id"))
    c.eos_token_ids = *eos;
  else if (llama && !f.contains("eos_token_id"))
    c.eos_token_ids = {2};
}

// Qwen3-MoE's expert fields (§1.1 of ../shared/spec/qwen3-moe-next.md).
void parse_moe(const ConfigFields& f, ModelConfig& c) {
  MoeConfig& m = c.moe;
  const auto experts = f.opt_int("num_experts"), local = f.opt_int("num_local_experts");
  if (experts && local && *experts != *local)
    f.fail_field("num_local_experts", fmt::format("({}) disagrees with its alias num_experts ({})", *local, *experts));
  const char* experts_key = local ? "num_local_experts" : "num_experts";
  const bool next = c.arch == Architecture::Qwen3Next;
  m.num_experts = local ? *local : experts.value_or(next ? 512 : 128);  // Qwen3Moe/NextConfig defaults
  if (m.num_experts < 0) f.fail_field(experts_key, fmt::format("must be >= 0, got {}", m.num_experts));
  m.num_experts_per_tok = f.opt_int("num_experts_per_tok").value_or(next ? 10 : 8);
  m.moe_intermediate_size = f.opt_int("moe_intermediate_size").value_or(next ? 512 : 768);
  m.decoder_sparse_step = f.opt_int("decoder_sparse_step").value_or(1);
  if (m.decoder_sparse_step <= 0)
    f.fail_field("decoder_sparse_step", fmt::format("must be positive, got {}", m.decoder_sparse_step));
  // Qwen3NextConfig defaults norm_topk_prob to true, Qwen3MoeConfig to false.
  if (!f.contains("norm_topk_prob") && !next)
    fmt::print(stderr,
               "warning: {}: norm_topk_prob is absent; using transformers' default false (SGLang assumes true)\n",
               f.label());
  m.norm_topk_prob = f.opt_bool("norm_topk_prob").value_or(next);
  if (const json* only = f.find("mlp_only_layers")) {
    if (!only->is_array())
      f.fail_field("mlp_only_layers", fmt::format("must be a list of layer indices, got {}", json_excerpt(*only)));
    for (const json& v : *only) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= c.num_hidden_layers)
        f.fail_field("mlp_only_layers",
                     fmt::format("entry {} is not a layer index in [0, {})", json_excerpt(v), c.num_hidden_layers));
      m.mlp_only_layers.push_back(v.get<int64_t>());
    }
  }
  if (m.num_experts == 0) return;  // every layer dense: the expert sizes are unused
  if (m.moe_intermediate_size <= 0)
    f.fail_field("moe_intermediate_size", fmt::format("must be positive, got {}", m.moe_intermediate_size));
  if (m.num_experts_per_tok <= 0 || m.num_experts_per_tok > m.num_experts)
    f.fail_field("num_experts_per_tok",
                 fmt::format("({}) must be in [1, {}] ({})", m.num_experts_per_tok, m.num_experts, experts_key));
}

// int(head_dim · factor) channels rotate (transformers' truncation); only Qwen3-Next's
// attention has partial RoPE, so any other model refuses a factor it would ignore.
int64_t rotary_dim(const ConfigFields& f, int64_t head_dim, double factor, Architecture arch) {
  if (factor != 1.0 && arch != Architecture::Qwen3Next)
    f.fail_field("partial_rotary_factor", fmt::format("= {} is not supported for this architecture", factor));
  const auto dim = int64_t(double(head_dim) * factor);
  if (!(factor > 0 && factor <= 1) || dim <= 0 || dim % 2 != 0)
    f.fail_field("partial_rotary_factor",
                 fmt::format("= {} gives {} rotary channels of head_dim {}; need an even number in (0, head_dim]",
                             factor, dim, head_dim));
  return dim;
}

}  // namespace

int64_t ModelConfig::num_linear_attention_layers() const {
  return std::count(linear_attention_layers.begin(), linear_attention_layers.end(), true);
}

bool ModelConfig::is_moe_layer(int64_t i) const {
  if (moe.num_experts <= 0 || (i + 1) % moe.decoder_sparse_step != 0) return false;
  return std::find(moe.mlp_only_layers.begin(), moe.mlp_only_layers.end(), i) == moe.mlp_only_layers.end();
}

std::string_view architecture_name(Architecture arch) {
  for (const auto& [name, a] : kArchitectures)
    if (a == arch) return name;
  return "unknown";
}

ModelConfig parse_model_config(const json& config, std::string_view label) {
  ConfigFields f(config, label);
  ModelConfig c;
  c.arch = parse_architecture(f, c.architecture_name);
  parse_sizes(f, c);
  if (c.arch != Architecture::Llama && c.arch != Architecture::Qwen3Next) check_no_sliding_window(f, c.num_hidden_layers);
  if (c.arch == Architecture::Qwen3Moe || c.arch == Architecture::Qwen3Next) parse_moe(f, c);
  if (c.arch == Architecture::Qwen3Next) parse_qwen3_next(f, c);

  if (auto act = f.opt_string("hidden_act"); act && *act != "silu")
    f.fail_field("hidden_act", fmt::format("'{}' is not supported (only silu)", *act));

  c.rms_norm_eps = f.opt_number("rms_norm_eps").value_or(1e-6);
  if (!(c.rms_norm_eps > 0))
    f.fail_field("rms_norm_eps", fmt::format("must be positive, got {}", c.rms_norm_eps));

  RopeConfig rope = parse_rope_config(f, c.max_position_embeddings, c.arch == Architecture::Qwen3Next ? 0.25 : 1.0);
  c.rope_theta = rope.theta;
  c.rope_scaling = std::move(rope.scaling);
  c.rotary_dim = rotary_dim(f, c.head_dim, rope.partial_rotary_factor, c.arch);

  c.tie_word_embeddings = f.opt_bool("tie_word_embeddings").value_or(false);
  c.attention_bias = f.opt_bool("attention_bias").value_or(false);
  // Qwen3's (and Qwen3-MoE's) MLP has no bias whatever the config says; LlamaMLP honours mlp_bias.
  const bool mlp_bias = f.opt_bool("mlp_bias").value_or(false);
  c.mlp_bias = c.arch == Architecture::Llama && mlp_bias;
  c.torch_dtype = parse_torch_dtype(f);
  parse_token_ids(f, c);

  if (const json* q = f.find("quantization_config")) {
    if (!q->is_object())
      f.fail_field("quantization_config",
                   fmt::format("must be an object, got {}", json_type_name(*q)));
    c.quantization_config = *q;
  }
  return c;
}

void apply_generation_config(ModelConfig& c, const json& generation, std::string_view label) {
  ConfigFields f(generation, label);
  if (auto eos = f.opt_token_ids("eos_token_id")) c.eos_token_ids = *eos;
  if (auto bos = f.opt_token_ids("bos_token_id")) {
    if (bos->size() != 1) f.fail_field("bos_token_id", "must be a single token id");
    c.bos_token_id = (*bos)[0];
  }
  GenerationDefaults& g = c.generation;
  g.do_sample = f.opt_bool("do_sample");
  g.temperature = f.opt_number("temperature");
  g.top_p = f.opt_number("top_p");
  g.min_p = f.opt_number("min_p");
  g.repetition_penalty = f.opt_number("repetition_penalty");
  g.top_k = f.opt_int("top_k");
  g.max_new_tokens = f.opt_int("max_new_tokens");
  if (g.temperature && *g.temperature < 0)
    f.fail_field("temperature", fmt::format("must be >= 0, got {}", *g.temperature));
  if (g.top_p && !(*g.top_p > 0 && *g.top_p <= 1))
    f.fail_field("top_p", fmt::format("must be in (0, 1], got {}", *g.top_p));
  if (g.min_p && !(*g.min_p >= 0 && *g.min_p <= 1))
    f.fail_field("min_p", fmt::format("must be in [0, 1], got {}", *g.min_p));
  if (g.repetition_penalty && !(*g.repetition_penalty > 0))
    f.fail_field("repetition_penalty",
                 fmt::format("must be positive, got {}", *g.repetition_penalty));
  if (g.top_k && *g.top_k < 0) f.fail_field("top_k", fmt::format("must be >= 0, got {}", *g.top_k));
  if (g.max_new_tokens && *g.max_new_tokens <= 0)
    f.fail_field("max_new_tokens", fmt::format("must be positive, got {}", *g.max_new_tokens));
}

ModelConfig load_model_config(const fs::path& dir) {
  const fs::path config_path = dir / "config.json";
  std::error_code ec;
  if (!fs::is_regular_file(config_path, ec))
    fail("{}: missing (no config.json in the folder)", config_path.string());
  const std::string label = config_path.string();
  ModelConfig c = parse_model_config(parse_json(read_text_file(config_path), label), label);

  const fs::path gen_path = dir / "generation_config.json";
  if (fs::is_regular_file(gen_path, ec))
    apply_generation_config(c, parse_json(read_text_file(gen_path), gen_path.string()),
                            gen_path.string());
  return c;
}

}  // namespace lowbit
