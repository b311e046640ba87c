// The layer plan of `lowbit quantize`: --scheme / --override / --ignore resolution (Python
// re.match semantics, first override wins, ignore wins), lm_head handling, fused-group and
// scheme-name errors.
#include "quantize/quant_plan.h"

#include <gtest/gtest.h>

#include "formats/format_util.h"
#include "io/test_util.h"

namespace lowbit::quantize {
namespace {

using testing::expect_error;

ModelConfig tiny(bool tied) {
  ModelConfig c;
  c.hidden_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 32;
  c.intermediate_size = 128;
  c.vocab_size = 96;
  c.tie_word_embeddings = tied;
  return c;
}

QuantPlan plan(OutFormat f, std::string scheme, std::vector<std::string> overrides = {},
               std::vector<std::string> ignores = {}, bool tied = true, std::optional<int64_t> g = {}) {
  PlanOptions o;
  o.format = f;
  o.scheme = std::move(scheme);
  o.overrides = std::move(overrides);
  o.ignores = std::move(ignores);
  o.tied_lm_head = tied;
  o.group_size = g;
  return make_plan(o, linear_layers(tiny(tied)));
}

std::string scheme_of(const QuantPlan& p, const std::string& prefix) { return p.find(prefix)->scheme; }

TEST(QuantPlan, LayersAndShapes) {
  const auto tied = linear_layers(tiny(true));
  ASSERT_EQ(tied.size(), 14u);
  EXPECT_EQ(tied[1].prefix, "model.layers.0.self_attn.k_proj");
  EXPECT_EQ(tied[1].out_features, 32);
  EXPECT_EQ(tied[6].prefix, "model.layers.0.mlp.down_proj");
  EXPECT_EQ(tied[6].in_features, 128);
  const auto untied = linear_layers(tiny(false));
  ASSERT_EQ(untied.size(), 15u);
  EXPECT_EQ(untied.back().prefix, "lm_head");
}

// Qwen3-MoE: layer 0 dense (mlp_only_layers), layer 1 sparse with 3 experts of F 32.
TEST(QuantPlan, MoeLayersRouterAndExperts) {
  ModelConfig c = tiny(true);
  c.moe.num_experts = 3;
  c.moe.num_experts_per_tok = 2;
  c.moe.moe_intermediate_size = 32;
  c.moe.mlp_only_layers = {0};
  const auto layers = linear_layers(c);
  ASSERT_EQ(layers.size(), 7u + 4u + 1u + 9u);  // dense layer, attention, router, 3 x 3 experts
  EXPECT_EQ(layers[11].prefix, "model.layers.1.mlp.gate");
  EXPECT_TRUE(layers[11].router);
  EXPECT_EQ(layers[11].out_features, 3);
  EXPECT_EQ(layers[12].prefix, "model.layers.1.mlp.experts.0.gate_proj");
  EXPECT_EQ(layers[12].out_features, 32);
  EXPECT_EQ(layers.back().prefix, "model.layers.1.mlp.experts.2.down_proj");
  EXPECT_EQ(layers.back().in_features, 32);
  PlanOptions o;
  o.format = OutFormat::MsModelSlim;
  o.scheme = "W8A8_DYNAMIC";
  o.overrides = {".*=W4A8_DYNAMIC"};  // reaches every linear but the router
  const QuantPlan p = make_plan(o, layers);
  EXPECT_EQ(scheme_of(p, "model.layers.1.mlp.gate"), "FLOAT");
  EXPECT_EQ(p.find("model.layers.1.mlp.gate")->why, "MoE router (float)");
  EXPECT_EQ(scheme_of(p, "model.layers.1.mlp.experts.1.up_proj"), "W4A8_DYNAMIC");
  // Every projection of every expert of a layer is one fused group.
  o.overrides = {".*experts\\.2\\.down_proj=FLOAT"};
  expect_error([&] { make_plan(o, layers); }, {"fused layers must share one scheme", "experts.2.down_proj"});
}

// The one parser of expert module names (fused groups, fused-layout slices, ct targets).
TEST(QuantPlan, ExpertPrefixes) {
  const auto e = formats::parse_expert_prefix("model.layers.3.mlp.experts.17.gate_proj");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->experts, "model.layers.3.mlp.experts");
  EXPECT_EQ(e->index, 17);
  EXPECT_EQ(e->leaf, "gate_proj");
  EXPECT_FALSE(formats::parse_expert_prefix("model.layers.3.mlp.experts.gate_up_proj"));
  EXPECT_FALSE(formats::parse_expert_prefix("model.layers.3.mlp.experts.17"));
  EXPECT_FALSE(formats::parse_expert_prefix("model.layers.3.mlp.experts.17."));
  EXPECT_FALSE(formats::parse_expert_prefix("model.layers.3.mlp.down_proj"));
}

TEST(QuantPlan, OverridesIgnoresAndAnchoring) {
  const QuantPlan p = plan(OutFormat::MsModelSlim, "W8A8_DYNAMIC",
                           {"model\\.layers\\.\\d+\\.self_attn=W8A8", "model\\.layers\\.1\\..*=W4A4_DYNAMIC",
                            "mlp=FLOAT" /* anchored at the start: matches nothing */},
                           {".*layers\\.1\\.mlp\\.down"}, false);
  EXPECT_EQ(scheme_of(p, "model.layers.0.self_attn.q_proj"), "W8A8");
  EXPECT_EQ(scheme_of(p, "model.layers.1.self_attn.o_proj"), "W8A8");  // first match wins
  EXPECT_EQ(scheme_of(p, "model.layers.1.mlp.up_proj"), "W4A4_DYNAMIC");
  EXPECT_EQ(scheme_of(p, "model.layers.0.mlp.up_proj"), "W8A8_DYNAMIC");
  EXPECT_EQ(scheme_of(p, "model.layers.1.mlp.down_proj"), "FLOAT");  // ignore wins over overrides
  EXPECT_EQ(p.find("model.layers.1.mlp.down_proj")->why, "--ignore '.*layers\\.1\\.mlp\\.down'");
  EXPECT_EQ(scheme_of(p, "lm_head"), "FLOAT");  // the default scheme never reaches lm_head
  EXPECT_TRUE(p.needs_calibration());
  EXPECT_FALSE(plan(OutFormat::MsModelSlim, "W8A8_DYNAMIC").needs_calibration());
}

TEST(QuantPlan, LmHeadOnlyByAnExplicitOverride) {
  EXPECT_EQ(scheme_of(plan(OutFormat::CompressedTensors, "W8A8", {".*=FP8_DYNAMIC"}, {}, false), "lm_head"), "FLOAT");
  EXPECT_EQ(scheme_of(plan(OutFormat::CompressedTensors, "W8A8", {"lm_head=FP8_DYNAMIC"}, {}, false), "lm_head"),
            "FP8_DYNAMIC");
  expect_error([] { plan(OutFormat::CompressedTensors, "W8A8", {"lm_head=W8A8"}, {}, true); },
               {"lm_head is tied to model.embed_tokens"});
}

TEST(QuantPlan, FusedGroupsMustAgree) {
  expect_error([] { plan(OutFormat::MsModelSlim, "W8A8_DYNAMIC", {".*layers\\.0\\.self_attn\\.k_proj=FLOAT"}); },
               {"fused layers must share one scheme", "'model.layers.0.self_attn.k_proj' is FLOAT",
                "'model.layers.0.self_attn.q_proj' is W8A8_DYNAMIC"});
  expect_error([] { plan(OutFormat::CompressedTensors, "W8A8", {}, {"model\\.layers\\.1\\.mlp\\.up_proj"}); },
               {"'model.layers.1.mlp.gate_proj' is W8A8", "'model.layers.1.mlp.up_proj' is FLOAT", "--ignore"});
  // o_proj and down_proj are not fused with anything: fine on their own.
  EXPECT_EQ(scheme_of(plan(OutFormat::MsModelSlim, "W8A8_DYNAMIC", {".*o_proj=FLOAT"}), "model.layers.0.self_attn.o_proj"),
            "FLOAT");
}

TEST(QuantPlan, NameErrorsListTheValidOnes) {
  expect_error([] { parse_format("gguf"); }, {"'gguf'", "msmodelslim, compressed-tensors, awq"});
  expect_error([] { plan(OutFormat::Awq, "W8A8_DYNAMIC"); },
               {"--scheme", "not valid for --format awq", "scheme of --format msmodelslim", "W4A16, FLOAT"});
  expect_error([] { plan(OutFormat::CompressedTensors, "W8A8", {"x=W4A8_MXFP"}); },
               {"--override 'x=W4A8_MXFP'", "--format msmodelslim", "FP8_BLOCK"});
  expect_error([] { plan(OutFormat::CompressedTensors, "W8A8", {"noequals"}); }, {"must be REGEX=SCHEME"});
  expect_error([] { plan(OutFormat::CompressedTensors, "W8A8", {"(=FLOAT"}); }, {"invalid regular expression"});
}

TEST(QuantPlan, GroupSizes) {
  EXPECT_EQ(plan(OutFormat::CompressedTensors, "W4A16", {}, {}, true, 32).layers[0].group_size, 32);
  EXPECT_EQ(plan(OutFormat::MsModelSlim, "W4A8_DYNAMIC").layers[0].group_size, 0);
  EXPECT_EQ(plan(OutFormat::MsModelSlim, "W4A8_DYNAMIC", {}, {}, true, 16).layers[0].group_size, 16);
  // Default 128 does not divide K = 64.
  expect_error([] { plan(OutFormat::Awq, "W4A16"); }, {"model.layers.0.self_attn.q_proj", "in_features 64", "128"});
  expect_error([] { plan(OutFormat::Awq, "W4A16", {}, {}, true, 0); }, {"AWQ is group-wise only"});
  expect_error([] { plan(OutFormat::MsModelSlim, "W4A8_DYNAMIC", {".*mlp.*=W8A8_MXFP8"}, {}, true, 16); },
               {"one global group_size"});
}

}  // namespace
}  // namespace lowbit::quantize
