#include "io/model_config.h"

#include <gtest/gtest.h>

#include "io/test_util.h"

namespace lowbit {
namespace {

using nlohmann::json;
using testing::expect_error;

constexpr std::string_view kLabel = "m/config.json";

// Qwen/Qwen3-0.6B config.json, verbatim.
const char* kQwen3_0_6B = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
  "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
  "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.51.0",
  "use_cache": true, "use_sliding_window": false, "vocab_size": 151936
})";

// HuggingFaceTB/SmolLM2-135M-Instruct config.json, verbatim.
const char* kSmolLM2 = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 576,
  "initializer_range": 0.041666666666666664, "intermediate_size": 1536, "is_llama_config": true,
  "max_position_embeddings": 8192, "model_type": "llama", "num_attention_heads": 9,
  "num_hidden_layers": 30, "num_key_value_heads": 3, "pad_token_id": 2, "pretraining_tp": 1,
  "rms_norm_eps": 1e-05, "rope_interleaved": false, "rope_scaling": null, "rope_theta": 100000,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.42.3",
  "transformers.js_config": {"kv_cache_dtype": {"q4f16": "float16", "fp16": "float16"}},
  "use_cache": true, "vocab_size": 49152
})";

// meta-llama/Llama-3.1-8B-Instruct config.json, verbatim.
const char* kLlama31_8B = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256
})";

// Qwen/Qwen3-8B with the YaRN block its model card recommends for 128k context.
const char* kQwen3_8B_Yarn = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "bos_token_id": 151643,
  "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
  "intermediate_size": 12288, "max_position_embeddings": 131072, "max_window_layers": 36,
  "model_type": "qwen3", "num_attention_heads": 32, "num_hidden_layers": 36,
  "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
  "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
  "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "use_sliding_window": false, "vocab_size": 151936
})";

ModelConfig parse(const json& j) { return parse_model_config(j, kLabel); }
ModelConfig parse(const char* text) { return parse(json::parse(text)); }

// kSmolLM2 with `patch` merged in (null values delete the key).
json smol_with(const json& patch) {
  json j = json::parse(kSmolLM2);
  j.merge_patch(patch);
  return j;
}

void expect_config_error(const json& j, std::initializer_list<std::string_view> parts) {
  expect_error([&] { parse(j); }, parts);
  expect_error([&] { parse(j); }, {kLabel});
}

// A Qwen3-30B-A3B-shaped config.json, as released (num_experts, top-level rope_theta).
const char* kQwen3Moe = R"({
  "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": false, "bos_token_id": 151643,
  "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
  "hidden_size": 2048, "intermediate_size": 6144, "max_position_embeddings": 40960,
  "max_window_layers": 48, "mlp_only_layers": [], "model_type": "qwen3_moe",
  "moe_intermediate_size": 768, "norm_topk_prob": true, "num_attention_heads": 32,
  "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 48,
  "num_key_value_heads": 4, "output_router_logits": false, "rms_norm_eps": 1e-06,
  "rope_scaling": null, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
  "sliding_window": null, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "use_sliding_window": false, "vocab_size": 151936
})";

json moe_with(const json& patch) {
  json j = json::parse(kQwen3Moe);
  j.merge_patch(patch);
  return j;
}

TEST(ModelConfig, Qwen3Moe) {
  ModelConfig c = parse(kQwen3Moe);
  EXPECT_EQ(c.arch, Architecture::Qwen3Moe);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.moe.num_experts, 128);
  EXPECT_EQ(c.moe.num_experts_per_tok, 8);
  EXPECT_EQ(c.moe.moe_intermediate_size, 768);
  EXPECT_TRUE(c.moe.norm_topk_prob);
  for (int64_t i : {0, 1, 47}) EXPECT_TRUE(c.is_moe_layer(i));
  EXPECT_FALSE(c.mlp_bias);
  // Dense models have no MoE layers.
  EXPECT_FALSE(parse(kQwen3_0_6B).is_moe_layer(0));
}

TEST(ModelConfig, Qwen3MoeLayerSelection) {
  // transformers' rule: i not in mlp_only_layers, E > 0, (i + 1) % decoder_sparse_step == 0.
  ModelConfig c = parse(moe_with({{"num_hidden_layers", 6}, {"decoder_sparse_step", 2}, {"mlp_only_layers", {3}}}));
  std::vector<bool> got;
  for (int64_t i = 0; i < 6; ++i) got.push_back(c.is_moe_layer(i));
  EXPECT_EQ(got, (std::vector<bool>{false, true, false, false, false, true}));
  c = parse(moe_with({{"num_experts", 0}, {"num_experts_per_tok", 0}}));
  EXPECT_FALSE(c.is_moe_layer(0));
}

TEST(ModelConfig, Qwen3MoeTransformers5Spelling) {
  // transformers 5 writes num_local_experts (num_experts is its alias) and rope_parameters.
  ModelConfig c = parse(moe_with({{"num_experts", nullptr}, {"num_local_experts", 8}, {"rope_theta", nullptr},
                                  {"rope_scaling", nullptr},
                                  {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 5e5}}}}));
  EXPECT_EQ(c.moe.num_experts, 8);
  EXPECT_DOUBLE_EQ(c.rope_theta, 5e5);
  EXPECT_EQ(parse(moe_with({{"num_local_experts", 128}})).moe.num_experts, 128);  // both, agreeing
}

TEST(ModelConfig, Qwen3MoeDefaults) {
  // Qwen3MoeConfig: head_dim null = hidden / heads, 4 kv heads, 128 experts, top-8, F 768,
  // norm_topk_prob false, intermediate_size 6144.
  json j = json::parse(R"({"architectures": ["Qwen3MoeForCausalLM"], "hidden_size": 256,
                           "num_hidden_layers": 2, "num_attention_heads": 8, "vocab_size": 100})");
  ModelConfig c = parse(j);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.moe.num_experts, 128);
  EXPECT_EQ(c.moe.num_experts_per_tok, 8);
  EXPECT_EQ(c.moe.moe_intermediate_size, 768);
  EXPECT_FALSE(c.moe.norm_topk_prob);
  EXPECT_EQ(c.intermediate_size, 6144);
  EXPECT_EQ(c.max_position_embeddings, 32768);
}

TEST(ModelConfig, Qwen3MoeErrorsNameTheField) {
  expect_config_error(moe_with({{"num_local_experts", 64}}), {"'num_local_experts'", "64", "num_experts (128)"});
  expect_config_error(moe_with({{"num_experts_per_tok", 129}}), {"'num_experts_per_tok'", "129", "[1, 128]"});
  expect_config_error(moe_with({{"num_experts_per_tok", 0}}), {"'num_experts_per_tok'"});
  expect_config_error(moe_with({{"moe_intermediate_size", 0}}), {"'moe_intermediate_size'"});
  expect_config_error(moe_with({{"decoder_sparse_step", 0}}), {"'decoder_sparse_step'"});
  expect_config_error(moe_with({{"mlp_only_layers", {48}}}), {"'mlp_only_layers'", "[0, 48)"});
  expect_config_error(moe_with({{"mlp_only_layers", 3}}), {"'mlp_only_layers'", "list"});
  expect_config_error(moe_with({{"num_experts", -1}}), {"'num_experts'", ">= 0"});
}

TEST(ModelConfig, Qwen3NextDefaultsAndLayerPattern) {
  // Qwen3NextConfig's defaults (../shared/spec/qwen3-moe-next.md §2.1): interval 4, heads
  // 16/2 × 256, partial RoPE 0.25 → 64 channels, GDN 16/32 heads of 128, 512 experts top-10,
  // norm_topk_prob true, shared expert 512.
  json j = json::parse(R"({"architectures": ["Qwen3NextForCausalLM"], "hidden_size": 2048,
                           "num_hidden_layers": 8, "num_attention_heads": 16, "vocab_size": 151936})");
  ModelConfig c = parse(j);
  EXPECT_EQ(c.arch, Architecture::Qwen3Next);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_EQ(c.rotary_dim, 64);
  EXPECT_EQ(c.linear_attention.num_key_heads, 16);
  EXPECT_EQ(c.linear_attention.num_value_heads, 32);
  EXPECT_EQ(c.linear_attention.key_head_dim, 128);
  EXPECT_EQ(c.linear_attention.conv_kernel, 4);
  EXPECT_EQ(c.moe.num_experts, 512);
  EXPECT_EQ(c.moe.num_experts_per_tok, 10);
  EXPECT_TRUE(c.moe.norm_topk_prob);
  EXPECT_EQ(c.shared_expert_intermediate_size, 512);
  EXPECT_EQ(c.linear_attention_layers, (std::vector<bool>{true, true, true, false, true, true, true, false}));
  EXPECT_EQ(c.num_linear_attention_layers(), 6);

  // transformers 5 writes layer_types (and not the interval), and the factor in rope_parameters.
  j["layer_types"] = {"linear_attention", "full_attention", "linear_attention", "full_attention",
                      "linear_attention", "linear_attention", "linear_attention", "full_attention"};
  j["head_dim"] = 32;
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 1e7}, {"partial_rotary_factor", 0.5}};
  c = parse(j);
  EXPECT_EQ(c.linear_attention_layers, (std::vector<bool>{true, false, true, false, true, true, true, false}));
  EXPECT_EQ(c.rotary_dim, 16);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e7);
}

TEST(ModelConfig, Qwen3NextErrorsNameTheField) {
  json j = json::parse(R"({"architectures": ["Qwen3NextForCausalLM"], "hidden_size": 64,
                           "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100})");
  auto with_field = [&](const char* key, json v) {
    json k = j;
    k[key] = std::move(v);
    return k;
  };
  expect_config_error(with_field("linear_num_value_heads", 5), {"'linear_num_value_heads'", "multiple", "(16)"});
  expect_config_error(with_field("layer_types", {"linear_attention"}), {"'layer_types'", "2 strings"});
  expect_config_error(with_field("layer_types", {"linear_attention", "sliding_attention"}),
                      {"'layer_types'", "entry 1", "sliding_attention"});
  expect_config_error(with_field("full_attention_interval", 0), {"'full_attention_interval'", "positive"});
  expect_config_error(with_field("partial_rotary_factor", 1.5), {"'partial_rotary_factor'", "even"});
}

TEST(ModelConfig, Qwen3_0_6B) {
  ModelConfig c = parse(kQwen3_0_6B);
  EXPECT_EQ(c.arch, Architecture::Qwen3);
  EXPECT_EQ(c.architecture_name, "Qwen3ForCausalLM");
  EXPECT_EQ(c.hidden_size, 1024);
  EXPECT_EQ(c.num_hidden_layers, 28);
  EXPECT_EQ(c.num_attention_heads, 16);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);  // not hidden / heads = 64
  EXPECT_EQ(c.intermediate_size, 3072);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.max_position_embeddings, 40960);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rope_scaling.type, "default");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_EQ(c.torch_dtype, DType::BF16);
  EXPECT_EQ(c.bos_token_id, 151643);
  EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{151645});
  EXPECT_TRUE(c.quantization_config.is_null());
}

TEST(ModelConfig, SmolLM2) {
  ModelConfig c = parse(kSmolLM2);
  EXPECT_EQ(c.arch, Architecture::Llama);
  EXPECT_EQ(c.head_dim, 64);  // 576 / 9
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_DOUBLE_EQ(c.rope_theta, 100000);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{2});
}

TEST(ModelConfig, Llama31WithLlama3Rope) {
  ModelConfig c = parse(kLlama31_8B);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{128001, 128008, 128009}));
  EXPECT_FALSE(c.tie_word_embeddings);
}

TEST(ModelConfig, Qwen3WithYarn) {
  ModelConfig c = parse(kQwen3_8B_Yarn);
  EXPECT_EQ(c.rope_scaling.type, "yarn");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 32768);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.beta_slow, 1.0);
  EXPECT_FALSE(c.rope_scaling.attention_factor.has_value());
  EXPECT_TRUE(c.rope_scaling.truncate);
}

TEST(ModelConfig, DefaultsMatchTransformers) {
  json llama = {{"architectures", {"LlamaForCausalLM"}},
                {"hidden_size", 256},
                {"num_hidden_layers", 2},
                {"num_attention_heads", 4},
                {"intermediate_size", 512},
                {"vocab_size", 1000}};
  ModelConfig c = parse(llama);
  EXPECT_EQ(c.num_key_value_heads, 4);  // = num_attention_heads
  EXPECT_EQ(c.head_dim, 64);            // = hidden / heads
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.torch_dtype, DType::F32);
  EXPECT_EQ(c.bos_token_id, 1);  // LlamaConfig defaults
  EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{2});
  EXPECT_FALSE(c.tie_word_embeddings);

  json qwen = llama;
  qwen["architectures"] = {"Qwen3ForCausalLM"};
  qwen["num_attention_heads"] = 64;
  c = parse(qwen);
  EXPECT_EQ(c.head_dim, 128);            // Qwen3Config default, not hidden / heads
  EXPECT_EQ(c.num_key_value_heads, 32);  // Qwen3Config default, not num_attention_heads
  EXPECT_EQ(c.max_position_embeddings, 32768);
  EXPECT_FALSE(c.bos_token_id.has_value());
  EXPECT_TRUE(c.eos_token_ids.empty());

  // An explicit null is None in Python: no Llama default then.
  llama["bos_token_id"] = nullptr;
  EXPECT_FALSE(parse(llama).bos_token_id.has_value());
  // ... and for Qwen3's num_key_value_heads it means num_attention_heads.
  qwen["num_key_value_heads"] = nullptr;
  EXPECT_EQ(parse(qwen).num_key_value_heads, 64);
  qwen.erase("num_key_value_heads");
  qwen["num_attention_heads"] = 16;
  expect_config_error(qwen, {"'num_key_value_heads'", "Qwen3 default", "(16)"});
}

TEST(ModelConfig, DtypeSpellings) {
  EXPECT_EQ(parse(smol_with({{"torch_dtype", nullptr}, {"dtype", "float16"}})).torch_dtype,
            DType::F16);
  // v5's `dtype` wins over `torch_dtype`.
  EXPECT_EQ(parse(smol_with({{"torch_dtype", "float32"}, {"dtype", "bfloat16"}})).torch_dtype,
            DType::BF16);
  EXPECT_EQ(parse(smol_with({{"torch_dtype", "torch.float32"}})).torch_dtype, DType::F32);
  expect_config_error(smol_with({{"torch_dtype", "int4"}}), {"'torch_dtype'", "'int4'"});
  expect_config_error(smol_with({{"dtype", 16}}), {"'dtype'", "must be a string"});
}

TEST(ModelConfig, ExplicitHeadDimNeedNotDivideHidden) {
  ModelConfig c = parse(smol_with({{"hidden_size", 600}, {"head_dim", 64}}));
  EXPECT_EQ(c.head_dim, 64);
}

TEST(ModelConfig, QuantizationConfigIsKeptRaw) {
  json q = {{"quant_method", "compressed-tensors"}, {"format", "int-quantized"}};
  EXPECT_EQ(parse(smol_with({{"quantization_config", q}})).quantization_config, q);
  expect_config_error(smol_with({{"quantization_config", "fp8"}}),
                      {"'quantization_config'", "must be an object"});
}

TEST(ModelConfig, MissingRequiredFields) {
  for (const char* field : {"hidden_size", "num_hidden_layers", "num_attention_heads",
                            "intermediate_size", "vocab_size"}) {
    SCOPED_TRACE(field);
    expect_config_error(smol_with({{field, nullptr}}),
                        {fmt::format("field '{}' is missing", field)});
  }
}

TEST(ModelConfig, WrongTypes) {
  expect_config_error(smol_with({{"hidden_size", "576"}}),
                      {"'hidden_size'", "must be an integer", "string"});
  expect_config_error(smol_with({{"num_hidden_layers", 30.5}}),
                      {"'num_hidden_layers'", "must be an integer"});
  expect_config_error(smol_with({{"rms_norm_eps", "1e-5"}}),
                      {"'rms_norm_eps'", "must be a number"});
  expect_config_error(smol_with({{"tie_word_embeddings", 1}}),
                      {"'tie_word_embeddings'", "must be true or false"});
  expect_config_error(smol_with({{"eos_token_id", "2"}}), {"'eos_token_id'", "token id"});
  expect_config_error(smol_with({{"eos_token_id", {2, -1}}}), {"'eos_token_id'", "out of range"});
  expect_error([] { parse(json::array()); }, {"must be a JSON object"});
}

TEST(ModelConfig, NonPositiveSizes) {
  for (const char* field :
       {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "vocab_size", "num_key_value_heads", "max_position_embeddings", "head_dim"}) {
    SCOPED_TRACE(field);
    expect_config_error(smol_with({{field, 0}}), {fmt::format("'{}'", field), "positive"});
  }
  expect_config_error(smol_with({{"rms_norm_eps", 0.0}}), {"'rms_norm_eps'", "positive"});
}

TEST(ModelConfig, HeadsMustDivide) {
  expect_config_error(smol_with({{"num_key_value_heads", 4}}),
                      {"'num_key_value_heads'", "(4) must divide num_attention_heads (9)"});
  expect_config_error(
      smol_with({{"hidden_size", 580}}),
      {"'hidden_size'", "not a multiple of num_attention_heads", "head_dim is absent"});
  expect_config_error(smol_with({{"head_dim", 63}}), {"'head_dim'", "even"});
}

TEST(ModelConfig, Architectures) {
  expect_config_error(smol_with({{"architectures", nullptr}}),
                      {"'architectures' is missing", "Qwen3ForCausalLM, LlamaForCausalLM"});
  expect_config_error(
      smol_with({{"architectures", {"MistralForCausalLM"}}}),
      {"unsupported architecture 'MistralForCausalLM'", "Qwen3ForCausalLM", "LlamaForCausalLM"});
  expect_config_error(smol_with({{"architectures", json::array()}}), {"non-empty list"});
}

TEST(ModelConfig, UnsupportedFeatures) {
  expect_config_error(smol_with({{"hidden_act", "gelu"}}), {"'hidden_act'", "'gelu'"});
  json qwen = json::parse(kQwen3_0_6B);
  qwen["use_sliding_window"] = true;
  qwen["sliding_window"] = 4096;
  qwen["max_window_layers"] = 21;
  expect_config_error(qwen, {"'use_sliding_window'", "not supported"});
  qwen["max_window_layers"] = 28;  // no layer is at or past 28: all full attention
  EXPECT_NO_THROW(parse(qwen));
}

TEST(GenerationConfig, OverridesEosAndBosAndFillsSampling) {
  ModelConfig c = parse(kQwen3_0_6B);
  // Qwen/Qwen3-0.6B generation_config.json, verbatim.
  json gen = json::parse(R"({
    "bos_token_id": 151643, "do_sample": true, "eos_token_id": [151645, 151643],
    "pad_token_id": 151643, "temperature": 0.6, "top_k": 20, "top_p": 0.95,
    "transformers_version": "4.51.0"})");
  apply_generation_config(c, gen, "m/generation_config.json");
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{151645, 151643}));
  EXPECT_EQ(c.bos_token_id, 151643);
  EXPECT_EQ(c.generation.do_sample, true);
  EXPECT_EQ(c.generation.temperature, 0.6);
  EXPECT_EQ(c.generation.top_k, 20);
  EXPECT_EQ(c.generation.top_p, 0.95);
  EXPECT_FALSE(c.generation.min_p.has_value());
  EXPECT_FALSE(c.generation.max_new_tokens.has_value());

  apply_generation_config(c, json{{"eos_token_id", 7}, {"bos_token_id", 3}}, "g");
  EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{7});
  EXPECT_EQ(c.bos_token_id, 3);
  expect_error(
      [&] {
        apply_generation_config(c, json{{"top_p", 1.5}}, "gen.json");
      },
      {"gen.json", "'top_p'"});
  expect_error(
      [&] {
        apply_generation_config(c, json{{"top_k", "20"}}, "gen.json");
      },
      {"gen.json", "'top_k'", "integer"});
}

TEST(LoadModelConfig, ReadsBothFiles) {
  testing::TempDir dir;
  dir.write("config.json", kLlama31_8B);
  dir.write("generation_config.json",
            R"({"bos_token_id": 128000, "do_sample": true, "eos_token_id": [128001, 128009],
                "temperature": 0.6, "top_p": 0.9})");
  ModelConfig c = load_model_config(dir.path());
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{128001, 128009}));
  EXPECT_EQ(c.generation.top_p, 0.9);
}

TEST(LoadModelConfig, ErrorsNameTheFile) {
  testing::TempDir dir;
  expect_error([&] { load_model_config(dir.path()); }, {"config.json", "missing"});
  dir.write("config.json", "{ not json");
  expect_error([&] { load_model_config(dir.path()); }, {"config.json", "invalid JSON"});
  dir.write("config.json", std::string(100000, '[') + std::string(100000, ']'));
  expect_error([&] { load_model_config(dir.path()); }, {"config.json", "nested deeper"});
  dir.write("config.json", kSmolLM2);
  dir.write("generation_config.json", R"({"eos_token_id": "x"})");
  expect_error([&] { load_model_config(dir.path()); },
               {"generation_config.json", "'eos_token_id'"});
}

}  // namespace
}  // namespace lowbit
