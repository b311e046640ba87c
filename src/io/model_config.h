// config.json (+ generation_config.json) for the dense architectures we run, read with
// transformers' defaults so a missing field means what it means in Python.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace lowbit {

enum class Architecture { Llama, Qwen3, Qwen3Moe, Qwen3Next };

// RoPE parameters, from `rope_scaling` (transformers v4) or `rope_parameters` (v5). The
// frequency math lives with the model; this only carries validated values.
struct RopeScaling {
  std::string type = "default";  // default | linear | llama3 | yarn
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  // llama3
  // llama3 and yarn; defaults to max_position_embeddings when absent, as in transformers.
  int64_t original_max_position_embeddings = 0;
  // yarn. transformers treats 0 (and null) beta as "use the default", so do we.
  double beta_fast = 32.0, beta_slow = 1.0;
  std::optional<double> attention_factor, mscale, mscale_all_dim;
  bool truncate = true;
};

// Sampling defaults from generation_config.json; nullopt where the file is silent.
struct GenerationDefaults {
  std::optional<bool> do_sample;
  std::optional<double> temperature, top_p, min_p, repetition_penalty;
  std::optional<int64_t> top_k, max_new_tokens;
};

// Routed mixture-of-experts FFN (Qwen3-MoE; ../shared/spec/qwen3-moe-next.md §1.1-1.2).
// num_experts == 0 means a dense model. router_aux_loss_coef and output_router_logits only
// matter for training and are ignored.
struct MoeConfig {
  int64_t num_experts = 0;          // `num_experts`, or its alias `num_local_experts`
  int64_t num_experts_per_tok = 0;  // top-k
  int64_t moe_intermediate_size = 0;
  bool norm_topk_prob = false;      // transformers' default (SGLang's is true)
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
};

// Qwen3-Next's Gated DeltaNet (linear-attention) layers (../shared/spec/qwen3-moe-next.md §2.1).
struct LinearAttentionConfig {
  int64_t num_key_heads = 0, num_value_heads = 0;  // Hk, Hv; Hk divides Hv
  int64_t key_head_dim = 0, value_head_dim = 0;    // dk, dv
  int64_t conv_kernel = 4;                         // Kc
};

struct ModelConfig {
  Architecture arch = Architecture::Llama;
  std::string architecture_name;  // as written in config.json, e.g. "Qwen3ForCausalLM"
  int64_t hidden_size = 0, num_hidden_layers = 0, num_attention_heads = 0, num_key_value_heads = 0,
          head_dim = 0, intermediate_size = 0, vocab_size = 0, max_position_embeddings = 0;
  double rms_norm_eps = 1e-6, rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false, attention_bias = false, mlp_bias = false;
  DType torch_dtype = DType::F32;  // `dtype` (v5) or `torch_dtype`; F32 when absent
  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;
  GenerationDefaults generation;
  nlohmann::json quantization_config;  // raw; null if absent (parsed by formats/)
  MoeConfig moe;
  // Qwen3-Next: which layers are Gated DeltaNet (`layer_types`, else every layer i with
  // (i + 1) % full_attention_interval != 0); empty for models whose layers all attend.
  std::vector<bool> linear_attention_layers;
  LinearAttentionConfig linear_attention;
  int64_t shared_expert_intermediate_size = 0;  // Qwen3-Next's always-on expert; 0: none
  // Leading channels of each head that RoPE rotates: head_dim · partial_rotary_factor
  // (0 in a hand-built config means all of head_dim: use rotary_channels()).
  int64_t rotary_dim = 0;
  int64_t rotary_channels() const { return rotary_dim > 0 ? rotary_dim : head_dim; }

  // Layer i has a routed-expert FFN iff i is not in mlp_only_layers, there are experts and
  // (i + 1) % decoder_sparse_step == 0 (transformers' Qwen3MoeDecoderLayer); otherwise a dense
  // SwiGLU MLP of intermediate_size.
  bool is_moe_layer(int64_t i) const;
  bool is_linear_attention_layer(int64_t i) const {
    return size_t(i) < linear_attention_layers.size() && linear_attention_layers[size_t(i)];
  }
  int64_t num_linear_attention_layers() const;
};

// Reads DIR/config.json and, when present, DIR/generation_config.json: its eos_token_id
// (int or list) and bos_token_id override config.json's; its sampling fields fill
// `generation`.
ModelConfig load_model_config(const std::filesystem::path& dir);

// Parses a config.json object; errors start with `label` and name the field.
ModelConfig parse_model_config(const nlohmann::json& config, std::string_view label);

// Applies a generation_config.json object to `config`; errors start with `label`.
void apply_generation_config(ModelConfig& config, const nlohmann::json& generation,
                             std::string_view label);

std::string_view architecture_name(Architecture arch);

}  // namespace lowbit
