// RoPE parsing through parse_model_config, in both transformers v4 (rope_theta +
// rope_scaling) and v5 (rope_parameters) spellings.
#include <gtest/gtest.h>

#include "io/model_config.h"
#include "io/test_util.h"

namespace lowbit {
namespace {

using nlohmann::json;
using testing::expect_error;

json base() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"hidden_size", 256},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"intermediate_size", 512},
          {"vocab_size", 1000},
          {"max_position_embeddings", 131072}};
}

json with(json patch) {
  json j = base();
  j.merge_patch(patch);
  return j;
}

RopeScaling rope_of(const json& j) { return parse_model_config(j, "config.json").rope_scaling; }
double theta_of(const json& j) { return parse_model_config(j, "config.json").rope_theta; }

void expect_rope_error(const json& j, std::initializer_list<std::string_view> parts) {
  expect_error([&] { parse_model_config(j, "config.json"); }, parts);
}

TEST(RopeConfig, V5RopeParameters) {
  json j = with({{"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 1e6}}}});
  EXPECT_DOUBLE_EQ(theta_of(j), 1e6);
  EXPECT_EQ(rope_of(j).type, "default");

  j = with({{"rope_parameters",
             {{"rope_type", "llama3"},
              {"rope_theta", 500000.0},
              {"factor", 8.0},
              {"low_freq_factor", 1.0},
              {"high_freq_factor", 4.0},
              {"original_max_position_embeddings", 8192}}}});
  EXPECT_DOUBLE_EQ(theta_of(j), 500000);
  EXPECT_EQ(rope_of(j).type, "llama3");
  EXPECT_EQ(rope_of(j).original_max_position_embeddings, 8192);
}

TEST(RopeConfig, ThetaInRopeObjectWinsOverTopLevel) {
  json j = with({{"rope_theta", 1000.0}, {"rope_parameters", {{"rope_theta", 2000.0}}}});
  EXPECT_DOUBLE_EQ(theta_of(j), 2000);
  EXPECT_DOUBLE_EQ(theta_of(with({{"rope_theta", 1000.0}})), 1000);
}

TEST(RopeConfig, RopeScalingWinsUnlessEmpty) {
  json j = with({{"rope_scaling", {{"type", "linear"}, {"factor", 2.0}}},
                 {"rope_parameters", {{"rope_type", "default"}}}});
  EXPECT_EQ(rope_of(j).type, "linear");
  EXPECT_DOUBLE_EQ(rope_of(j).factor, 2.0);
  j["rope_scaling"] = json::object();
  EXPECT_EQ(rope_of(j).type, "default");
}

TEST(RopeConfig, RopeTypeWinsOverType) {
  json j = with({{"rope_scaling", {{"type", "dynamic"}, {"rope_type", "linear"}, {"factor", 3}}}});
  EXPECT_EQ(rope_of(j).type, "linear");
  EXPECT_DOUBLE_EQ(rope_of(j).factor, 3.0);
}

TEST(RopeConfig, NestedByLayerType) {
  json j = with(
      {{"rope_parameters", {{"full_attention", {{"rope_type", "default"}, {"rope_theta", 5e5}}}}}});
  EXPECT_DOUBLE_EQ(theta_of(j), 5e5);
  j["rope_parameters"]["sliding_attention"] = {{"rope_type", "default"}, {"rope_theta", 1e4}};
  expect_rope_error(j, {"'rope_parameters'", "per-layer-type"});
}

TEST(RopeConfig, YarnDefaultsAndOptionalFields) {
  json j = with({{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}}});
  RopeScaling r = rope_of(j);
  EXPECT_EQ(r.original_max_position_embeddings, 131072);  // = max_position_embeddings
  EXPECT_DOUBLE_EQ(r.beta_fast, 32);
  EXPECT_DOUBLE_EQ(r.beta_slow, 1);

  j = with({{"rope_scaling",
             {{"rope_type", "yarn"},
              {"factor", 40},
              {"original_max_position_embeddings", 4096},
              {"beta_fast", 0},
              {"beta_slow", 2},
              {"mscale", 1.0},
              {"mscale_all_dim", 0.707},
              {"attention_factor", 1.2},
              {"truncate", false}}}});
  r = rope_of(j);
  EXPECT_DOUBLE_EQ(r.beta_fast, 32);  // 0 means default, as `or 32` in transformers
  EXPECT_DOUBLE_EQ(r.beta_slow, 2);
  EXPECT_EQ(r.mscale, 1.0);
  EXPECT_EQ(r.mscale_all_dim, 0.707);
  EXPECT_EQ(r.attention_factor, 1.2);
  EXPECT_FALSE(r.truncate);

  // A null factor is the context ratio.
  j = with({{"rope_scaling",
             {{"rope_type", "yarn"},
              {"factor", nullptr},
              {"original_max_position_embeddings", 32768}}}});
  j["rope_scaling"]["factor"] = nullptr;  // merge_patch dropped it
  EXPECT_DOUBLE_EQ(rope_of(j).factor, 4.0);
}

TEST(RopeConfig, TopLevelOriginalMaxPositionsWins) {
  json j = with(
      {{"original_max_position_embeddings", 4096},
       {"rope_scaling",
        {{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 32768}}}});
  EXPECT_EQ(rope_of(j).original_max_position_embeddings, 4096);
}

TEST(RopeConfig, YarnMissingFactor) {
  expect_rope_error(with({{"rope_scaling", {{"rope_type", "yarn"}}}}),
                    {"config.json", "'rope_scaling.factor'", "required", "'yarn'"});
}

TEST(RopeConfig, Llama3MissingFields) {
  for (const char* missing : {"factor", "low_freq_factor", "high_freq_factor"}) {
    SCOPED_TRACE(missing);
    json rope = {{"rope_type", "llama3"},
                 {"factor", 8.0},
                 {"low_freq_factor", 1.0},
                 {"high_freq_factor", 4.0}};
    rope.erase(missing);
    expect_rope_error(with({{"rope_scaling", rope}}),
                      {fmt::format("'rope_scaling.{}'", missing), "required", "'llama3'"});
  }
  expect_rope_error(with({{"rope_scaling",
                           {{"rope_type", "llama3"},
                            {"factor", 8.0},
                            {"low_freq_factor", 4.0},
                            {"high_freq_factor", 4.0}}}}),
                    {"'rope_scaling.high_freq_factor'", "greater than low_freq_factor"});
}

TEST(RopeConfig, LinearNeedsFactor) {
  expect_rope_error(with({{"rope_scaling", {{"type", "linear"}}}}),
                    {"'rope_scaling.factor'", "required"});
  expect_rope_error(with({{"rope_scaling", {{"type", "linear"}, {"factor", -2}}}}),
                    {"'rope_scaling.factor'", "positive"});
}

TEST(RopeConfig, UnsupportedTypesAreNamed) {
  for (const char* type : {"dynamic", "longrope", "su"}) {
    SCOPED_TRACE(type);
    expect_rope_error(
        with({{"rope_scaling", {{"type", type}, {"factor", 2.0}}}}),
        {fmt::format("'{}' is not a supported RoPE type", type), "default, linear, llama3, yarn"});
  }
}

TEST(RopeConfig, BadValues) {
  expect_rope_error(with({{"rope_theta", 0}}), {"'rope_theta'", "positive"});
  expect_rope_error(with({{"rope_parameters", {{"rope_theta", -1.0}}}}),
                    {"'rope_parameters.rope_theta'", "positive"});
  expect_rope_error(with({{"rope_scaling", "yarn"}}), {"'rope_scaling'", "must be an object"});
  expect_rope_error(with({{"rope_scaling", {{"rope_type", 3}}}}),
                    {"'rope_scaling.rope_type'", "must be a string"});
  expect_rope_error(with({{"partial_rotary_factor", 0.5}}),
                    {"'partial_rotary_factor'", "not supported"});
  // Only Qwen3-Next has partial RoPE; the factor is read from either place.
  expect_rope_error(with({{"rope_parameters", {{"partial_rotary_factor", 0.25}}}}),
                    {"'partial_rotary_factor'", "not supported for this architecture"});
}

}  // namespace
}  // namespace lowbit
