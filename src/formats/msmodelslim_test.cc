#include <gtest/gtest.h>

#include "formats/formats_test_util.h"

namespace lowbit::testing {
namespace {

constexpr int64_t N = 16, K = 64;
const std::string P = "model.layers.0.self_attn.q_proj";

// One layer of msmodelslim `type`, with the companions the spec lists; entries for every tensor.
void add_layer(CheckpointBuilder& b, const std::string& prefix, const std::string& type, bool v1 = false,
               int64_t group = 0) {
  auto entry = [&](const std::string& suffix) { b.description[prefix + "." + suffix] = type; };
  auto add = [&](const std::string& suffix, const std::string& dtype, std::vector<int64_t> shape) {
    b.add(prefix + "." + suffix, dtype, std::move(shape));
    entry(suffix);
  };
  if (type == "FLOAT") {
    add("weight", "BF16", {N, K});
  } else if (type == "W8A8") {
    add("weight", "I8", {N, K});
    add("quant_bias", "I32", {N});
    add("input_scale", "F32", {1});
    add("input_offset", "F32", {1});
    add("deq_scale", "F32", {N});
  } else if (type == "W8A8_DYNAMIC" || type == "W4A4_DYNAMIC") {
    add("weight", "I8", {N, K});
    add("weight_scale", "F32", {N, 1});
    add("weight_offset", "F32", {N, 1});
  } else if (type == "W4A8_DYNAMIC") {
    add("weight", "I8", {v1 ? N / 2 : N, K});
    add("weight_scale", "F32", {N, 1});
    add("weight_offset", "F32", {N, 1});
    add("scale_bias", "F32", {N, 1});
    if (group) {
      add("weight_scale_second", "F32", {N, K / group});
      add("weight_offset_second", "F32", {N, K / group});
    }
  } else if (type == "W8A8_MXFP8") {
    add("weight", "F8_E4M3", {N, K});
    add("weight_scale", "U8", {N, K / 32});
  } else {  // W4A8_MXFP, W4A4_MXFP4
    add("weight", "U8", {N, K / 2});
    add("weight_scale", "U8", {N, K / 32});
  }
}

void start(CheckpointBuilder& b, bool v1 = false, int64_t group = 0) {
  b.description = {{"model_quant_type", "W8A8"}, {"metadata", {{"x", 1}}}, {"group_size", group}};
  if (v1) b.description["version"] = "1.0.0";
  b.add("model.embed_tokens.weight", "BF16", {32, K});
  b.description["model.embed_tokens.weight"] = "FLOAT";
}

struct Case {
  std::string type;
  bool v1;
  int64_t group;
  SchemeKind kind;
  WeightEncoding encoding;
  std::string roles;
};

class MsModelSlimTypes : public ::testing::TestWithParam<Case> {};

TEST_P(MsModelSlimTypes, LoadsSpecAndCanonicalRoles) {
  const Case& c = GetParam();
  CheckpointBuilder b;
  start(b, c.v1, c.group);
  add_layer(b, P, c.type, c.v1, c.group);
  b.write();
  auto f = b.detect();
  EXPECT_EQ(f->name(), "msmodelslim");
  const SchemeSpec s = f->spec_for(P);
  EXPECT_EQ(s.kind, c.kind);
  EXPECT_EQ(s.encoding, c.encoding);
  EXPECT_EQ(s.origin, "msmodelslim:" + c.type);
  EXPECT_EQ(roles_string(f->tensors_for(P, false)), c.roles);
  if (c.group) {
    EXPECT_EQ(s.weight.granularity, Granularity::Group);
    EXPECT_EQ(s.weight.group_size, c.group);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllTypes, MsModelSlimTypes,
    ::testing::Values(Case{"FLOAT", false, 0, SchemeKind::Float, WeightEncoding::Native, "weight=BF16[16,64]"},
                      Case{
                          "W8A8", false, 0, SchemeKind::W8A8Static, WeightEncoding::Native,
                          "weight=I8[16,64] deq_scale=F32[16] input_scale=F32[1] input_zero=F32[1] quant_bias=I32[16]"},
                      Case{"W8A8_DYNAMIC", false, 0, SchemeKind::W8A8Dynamic, WeightEncoding::Native,
                           "weight=I8[16,64] weight_scale=F32[16,1] weight_zero=F32[16,1]"},
                      Case{"W4A4_DYNAMIC", false, 0, SchemeKind::W4A4Dynamic, WeightEncoding::Int4InInt8,
                           "weight=I8[16,64] weight_scale=F32[16,1] weight_zero=F32[16,1]"},
                      Case{"W4A8_DYNAMIC", false, 0, SchemeKind::W4A8Dynamic, WeightEncoding::Int4InInt8,
                           "weight=I8[16,64] weight_scale=F32[16,1] weight_zero=F32[16,1]"},
                      Case{"W4A8_DYNAMIC", true, 0, SchemeKind::W4A8Dynamic, WeightEncoding::Int4PackedRowPairs,
                           "weight=I8[8,64] weight_scale=F32[16,1] weight_zero=F32[16,1]"},
                      Case{"W4A8_DYNAMIC", true, 32, SchemeKind::W4A8Dynamic, WeightEncoding::Int4PackedRowPairs,
                           "weight=I8[8,64] weight_scale=F32[16,1] weight_scale_second=F32[16,2] weight_zero=F32[16,1] "
                           "weight_zero_second=F32[16,2]"},
                      Case{"W8A8_MXFP8", false, 0, SchemeKind::Mxfp8, WeightEncoding::Native,
                           "weight=F8_E4M3[16,64] weight_scale=U8[16,2]"},
                      Case{"W4A8_MXFP", false, 0, SchemeKind::Mxfp4, WeightEncoding::Fp4PackedK,
                           "weight=U8[16,32] weight_scale=U8[16,2]"},
                      Case{"W4A4_MXFP4", false, 0, SchemeKind::Mxfp4, WeightEncoding::Fp4PackedK,
                           "weight=U8[16,32] weight_scale=U8[16,2]"}));

TEST(MsModelSlim, ActivationArgsPerType) {
  CheckpointBuilder b;
  start(b);
  add_layer(b, "a", "W8A8");
  add_layer(b, "b", "W4A8_MXFP");
  add_layer(b, "c", "W4A4_MXFP4");
  b.write();
  auto f = b.detect();
  const SchemeSpec a = f->spec_for("a");
  ASSERT_TRUE(a.activation);
  EXPECT_FALSE(a.activation->symmetric);
  EXPECT_EQ(a.activation->granularity, Granularity::Tensor);
  EXPECT_EQ(f->spec_for("b").activation->kind, NumKind::FloatE4M3);
  EXPECT_EQ(f->spec_for("c").activation->kind, NumKind::FloatE2M1);
  EXPECT_EQ(f->spec_for("c").weight.group_size, 32);
}

TEST(MsModelSlim, DeqScaleI64IsHandedOverAsStored) {
  CheckpointBuilder b;
  start(b);
  add_layer(b, P, "W8A8");
  b.add(P + ".deq_scale", "I64", {N});
  b.write();
  EXPECT_EQ(b.detect()->tensors_for(P, false).find("deq_scale")->dtype, DType::I64);
}

TEST(MsModelSlim, W8A8StaticDoesNotHandOverTheFloatBias) {
  CheckpointBuilder b;
  start(b);
  add_layer(b, P, "W8A8");
  b.add(P + ".bias", "BF16", {N});
  add_layer(b, "dyn", "W8A8_DYNAMIC");
  b.add("dyn.bias", "BF16", {N});
  b.write();
  auto f = b.detect();
  EXPECT_FALSE(f->tensors_for(P, true).bias);
  EXPECT_TRUE(f->tensors_for("dyn", true).bias);
}

TEST(MsModelSlim, DescriptionWinsOverQuantizationConfig) {
  CheckpointBuilder b;
  start(b);
  add_layer(b, P, "W8A8_DYNAMIC");
  b.config().quantization_config = {{"quant_method", "awq"}};
  b.write();
  EXPECT_EQ(b.detect()->name(), "msmodelslim");
}

TEST(MsModelSlim, LayerWithoutEntryIsFloatOnlyIfItsWeightIsFloat) {
  CheckpointBuilder b;
  start(b);
  b.add("lm_head.weight", "BF16", {32, K});
  b.add("odd.weight", "I8", {N, K});
  b.write();
  auto f = b.detect();
  EXPECT_EQ(f->spec_for("lm_head").kind, SchemeKind::Float);
  expect_error([&] { f->spec_for("odd"); }, {"quant_model_description.json", "no entry 'odd.weight'"});
}

class MsModelSlimRejected : public ::testing::TestWithParam<std::string> {};
TEST_P(MsModelSlimRejected, ByName) {
  CheckpointBuilder b;
  start(b);
  b.add(P + ".weight", "I8", {N, K});
  b.description[P + ".weight"] = GetParam();
  b.write();
  expect_error([&] { b.detect(); },
               {"quant_model_description.json", P + ".weight", "'" + GetParam() + "'", "does not support"});
}
INSTANTIATE_TEST_SUITE_P(Types, MsModelSlimRejected,
                         ::testing::Values("W8A8_MIX", "W8A16", "WFP8AFP8_DYNAMIC", "W16A16S", "W4A4_MXFP4_DUALSCALE",
                                           "W8A8_FLATQUANT", "W4A4_FLATQUANT_DYNAMIC", "W8A8_SVD", "C8", "FAQuant"));

TEST(MsModelSlim, UnknownTypeString) {
  CheckpointBuilder b;
  start(b);
  b.add(P + ".weight", "I8", {N, K});
  b.description[P + ".weight"] = "W3A5";
  b.write();
  expect_error([&] { b.detect(); },
               {"quant_model_description.json", P + ".weight", "unknown quantization type 'W3A5'"});
}

TEST(MsModelSlim, PerGroupW8A8DynamicAndW4A4Rejected) {
  for (std::string type : {"W8A8_DYNAMIC", "W4A4_DYNAMIC"}) {
    CheckpointBuilder b;
    start(b, false, 32);
    add_layer(b, P, type);
    b.add(P + ".weight_scale", "F32", {N, K / 32});
    b.write();
    expect_error([&] { b.detect()->tensors_for(P, false); },
                 {"model.safetensors", P + ".weight_scale", "per-group " + type + " is not supported"});
  }
}

TEST(MsModelSlim, MissingCompanionTensor) {
  CheckpointBuilder b;
  start(b);
  add_layer(b, P, "W8A8");
  b.remove(P + ".deq_scale");
  b.write();
  expect_error([&] { b.detect()->tensors_for(P, false); },
               {b.dir().path().string(), "needs tensor '" + P + ".deq_scale'", "msmodelslim:W8A8"});
}

TEST(MsModelSlim, WrongScaleShape) {
  CheckpointBuilder b;
  start(b);
  add_layer(b, P, "W8A8_MXFP8");
  b.set_shape(P + ".weight_scale", {N, 3});
  b.write();
  expect_error([&] { b.detect()->tensors_for(P, false); },
               {"model.safetensors", P + ".weight_scale", "shape [16, 3], expected [16, 2]"});
}

TEST(MsModelSlim, WrongDtype) {
  CheckpointBuilder b;
  start(b);
  add_layer(b, P, "W8A8");
  b.add(P + ".quant_bias", "F32", {N});
  b.write();
  expect_error([&] { b.detect()->tensors_for(P, false); }, {P + ".quant_bias", "dtype F32, expected I32"});
}

TEST(MsModelSlim, PackedW4A8RowsDisagreeWithScale) {
  CheckpointBuilder b;
  start(b, /*v1=*/true);
  add_layer(b, P, "W4A8_DYNAMIC", true);
  b.set_shape(P + ".weight", {N, K});  // unpacked rows in a 1.0.0 file
  b.write();
  expect_error([&] { b.detect()->tensors_for(P, false); }, {P + ".weight", "expected [N/2, K] = [8, 64]"});
}

TEST(MsModelSlim, MxKNotMultipleOf32) {
  CheckpointBuilder b;
  start(b);
  add_layer(b, P, "W4A4_MXFP4");
  b.set_shape(P + ".weight", {N, 20});
  b.write();
  expect_error([&] { b.detect()->tensors_for(P, false); }, {P + ".weight", "K = 40 is not a multiple"});
}

// Files that do not write `group_size` (msmodelslim's older safe_tensor saver) imply it by
// weight_scale_second's columns; a global group_size that does not divide K is an error.
TEST(MsModelSlim, PerGroupSizeFromJsonOrScaleSecond) {
  {
    CheckpointBuilder b;
    start(b, true, 0);
    add_layer(b, P, "W4A8_DYNAMIC", true, 32);
    b.write();
    EXPECT_EQ(b.detect()->spec_for(P).weight.group_size, 32);
    EXPECT_EQ(b.detect()->tensors_for(P, false).find("weight_scale_second")->shape, (std::vector<int64_t>{N, K / 32}));
  }
  {
    CheckpointBuilder b;
    start(b, true, 48);
    add_layer(b, P, "W4A8_DYNAMIC", true, 32);
    b.write();
    expect_error([&] { b.detect()->tensors_for(P, false); }, {"quant_model_description.json", "'group_size' = 48"});
  }
}

TEST(MsModelSlim, FusedQkvMustShareType) {
  CheckpointBuilder b;
  start(b);
  add_layer(b, "model.layers.0.self_attn.q_proj", "W8A8");
  add_layer(b, "model.layers.0.self_attn.k_proj", "W8A8");
  add_layer(b, "model.layers.0.self_attn.v_proj", "W8A8_DYNAMIC");
  add_layer(b, "model.layers.0.self_attn.o_proj", "W8A8_DYNAMIC");  // not fused: may differ
  b.write();
  expect_error([&] { b.detect(); }, {"quant_model_description.json", "fused modules must share one type",
                                     "'model.layers.0.self_attn.k_proj.weight' is W8A8",
                                     "'model.layers.0.self_attn.v_proj.weight' is W8A8_DYNAMIC"});
}

TEST(MsModelSlim, FusedGateUpAndExpertsMustShareType) {
  {
    CheckpointBuilder b;
    start(b);
    add_layer(b, "model.layers.1.mlp.gate_proj", "W4A8_DYNAMIC");
    add_layer(b, "model.layers.1.mlp.up_proj", "W8A8_DYNAMIC");
    b.write();
    expect_error([&] { b.detect(); }, {"model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight"});
  }
  {
    CheckpointBuilder b;
    start(b);
    add_layer(b, "model.layers.2.mlp.experts.0.down_proj", "W8A8_DYNAMIC");
    add_layer(b, "model.layers.2.mlp.experts.1.down_proj", "W8A8_DYNAMIC");
    add_layer(b, "model.layers.2.mlp.experts.10.gate_proj", "W4A8_DYNAMIC");
    add_layer(b, "model.layers.2.mlp.gate", "FLOAT");  // the router is not an expert
    b.write();
    expect_error([&] { b.detect(); }, {"model.layers.2.mlp.experts.10.gate_proj.weight' is W4A8_DYNAMIC"});
  }
  {
    CheckpointBuilder b;
    start(b);
    add_layer(b, "model.layers.2.mlp.experts.0.down_proj", "W8A8_DYNAMIC");
    add_layer(b, "model.layers.2.mlp.experts.1.up_proj", "W8A8_DYNAMIC");
    add_layer(b, "model.layers.2.mlp.gate", "FLOAT");
    b.write();
    EXPECT_NO_THROW(b.detect());
  }
}

TEST(MsModelSlim, CheckFusedIsCallable) {
  CheckpointBuilder b;
  start(b);
  add_layer(b, "x.q_proj", "W8A8");
  add_layer(b, "y.q_proj", "FLOAT");
  b.write();
  auto f = b.detect();
  std::vector<std::string> same = {"x.q_proj"}, diff = {"x.q_proj", "y.q_proj"};
  EXPECT_NO_THROW(f->check_fused(same));
  expect_error([&] { f->check_fused(diff); }, {"'x.q_proj.weight' is W8A8 but 'y.q_proj.weight' is FLOAT"});
}

TEST(MsModelSlim, MalformedDescription) {
  struct Bad {
    std::string text, expect;
  };
  const std::vector<Bad> cases = {
      {"{\"a.weight\": \"W8A8\",", "quant_model_description.json"},
      {"[1, 2]", "must be a JSON object"},
      {R"({"version": "2.0"})", "field 'version' = '2.0'"},
      {R"({"version": 1})", "field 'version' must be a string"},
      {R"({"group_size": "64"})", "field 'group_size' must be an integer"},
      {R"({"group_size": -1})", "field 'group_size' = -1"},
      {R"({"x.weight": 3})", "field 'x.weight' must be a quantization type string"},
      {R"({"kv_quant_type": "C8"})", "field 'kv_quant_type' = 'C8'"},
      {R"({"fa_quant_type": "FAQuant"})", "field 'fa_quant_type'"},
      {R"({"a.weight": "W8A8", "a.weight": "FLOAT"})", "duplicate"},
      {R"({"model.layers.0.input_layernorm.bias": "W8A8"})", "anti-outlier norm bias"},
  };
  for (const Bad& c : cases) {
    CheckpointBuilder b;
    b.add("model.embed_tokens.weight", "BF16", {4, 4});
    b.description_text = c.text;
    b.write();
    expect_error([&] { b.detect(); }, {"quant_model_description.json", c.expect});
  }
}

TEST(MsModelSlim, NullGlobalsAndUnknownGlobalKeysAreFine) {
  CheckpointBuilder b;
  b.add(P + ".weight", "BF16", {N, K});
  b.description_text = R"({"kv_quant_type": null, "fa_quant_type": null, "optional": {"a": 1}, "future": [1],
                           "model.layers.0.self_attn.q_proj.weight": "FLOAT"})";
  b.write();
  EXPECT_EQ(b.detect()->spec_for(P).kind, SchemeKind::Float);
}

TEST(HfFloat, PlainCheckpointStillWorks) {
  CheckpointBuilder b;
  b.add(P + ".weight", "BF16", {N, K});
  b.add(P + ".bias", "BF16", {N});
  b.write();
  auto f = b.detect();
  EXPECT_EQ(f->name(), "hf-float");
  EXPECT_EQ(f->spec_for(P).kind, SchemeKind::Float);
  EXPECT_EQ(roles_string(f->tensors_for(P, true)), "weight=BF16[16,64] bias=BF16[16]");
}

TEST(DetectFormat, UnknownQuantMethodIsRefusedByName) {
  CheckpointBuilder b;
  b.add(P + ".weight", "BF16", {N, K});
  b.config().quantization_config = {{"quant_method", "gptq"}};
  b.write();
  expect_error([&] { b.detect(); },
               {"config.json", "field 'quantization_config.quant_method' = 'gptq' is not supported"});
  b.config().quantization_config = {{"bits", 4}};
  expect_error([&] { b.detect(); }, {"config.json", "quant_method' is required"});
}

}  // namespace
}  // namespace lowbit::testing
