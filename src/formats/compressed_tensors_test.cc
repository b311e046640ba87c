#include <gtest/gtest.h>

#include "formats/formats_test_util.h"

namespace lowbit::testing {
namespace {

using nlohmann::json;
constexpr int64_t N = 16, K = 64;
const std::string L = "model.layers.0.";
const std::string Q = L + "self_attn.q_proj", KP = L + "self_attn.k_proj", V = L + "self_attn.v_proj",
                  O = L + "self_attn.o_proj";

json args(int bits, std::string type, std::string strategy, bool symmetric = true, bool dynamic = false,
          json group_size = nullptr) {
  return {{"num_bits", bits},     {"type", type},
          {"strategy", strategy}, {"symmetric", symmetric},
          {"dynamic", dynamic},   {"group_size", group_size},
          {"actorder", nullptr},  {"block_structure", nullptr},
          {"observer", "minmax"}};
}

json config(json weights, json input, std::string format, json targets = json::array({"Linear"}),
            json ignore = json::array({"lm_head"})) {
  return {{"quant_method", "compressed-tensors"},
          {"format", format},
          {"quantization_status", "compressed"},
          {"ignore", ignore},
          {"sparsity_config", json::object()},
          {"kv_cache_scheme", nullptr},
          {"config_groups", {{"group_0", {{"targets", targets}, {"weights", weights}, {"input_activations", input}}}}}};
}

// Adds layers `prefixes` in the layout of `layout` ("int8", "fp8", "packed", "packed_asym", "float").
void add_layers(CheckpointBuilder& b, const std::vector<std::string>& prefixes, const std::string& layout,
                std::vector<int64_t> scale = {N, 1}) {
  for (const std::string& p : prefixes) {
    if (layout == "float") {
      b.add(p + ".weight", "BF16", {N, K});
      continue;
    }
    if (layout == "int8" || layout == "fp8") {
      b.add(p + ".weight", layout == "int8" ? "I8" : "F8_E4M3", {N, K});
    } else {
      b.add(p + ".weight_packed", "I32", {N, K / 8});
      b.add_i64(p + ".weight_shape", {N, K});
      if (layout == "packed_asym") b.add(p + ".weight_zero_point", "I32", {N / 8, scale[1]});
    }
    b.add(p + ".weight_scale", "BF16", scale);
  }
}

const std::vector<std::string> kAttn = {Q, KP, V, O};

TEST(CompressedTensors, W8A8DynamicPerChannel) {
  CheckpointBuilder b;
  add_layers(b, kAttn, "int8");
  b.add("lm_head.weight", "BF16", {32, K});
  b.config().quantization_config =
      config(args(8, "int", "channel"), args(8, "int", "token", true, true), "int-quantized");
  b.write();
  auto f = b.detect();
  EXPECT_EQ(f->name(), "compressed-tensors");
  const SchemeSpec s = f->spec_for(Q);
  EXPECT_EQ(s.kind, SchemeKind::W8A8Dynamic);
  EXPECT_EQ(s.origin, "compressed-tensors:group_0");
  EXPECT_EQ(s.weight.granularity, Granularity::Channel);
  ASSERT_TRUE(s.activation);
  EXPECT_EQ(s.activation->granularity, Granularity::Token);
  EXPECT_TRUE(s.activation->dynamic);
  EXPECT_EQ(roles_string(f->tensors_for(Q, false)), "weight=I8[16,64] weight_scale=BF16[16,1]");
  EXPECT_EQ(f->spec_for("lm_head").kind, SchemeKind::Float);
  EXPECT_EQ(f->spec_for("lm_head").origin, "compressed-tensors:ignore");
  EXPECT_EQ(roles_string(f->tensors_for("lm_head", false)), "weight=BF16[32,64]");
}

TEST(CompressedTensors, W8A8StaticSymmetricAndAsymmetric) {
  for (bool sym : {true, false}) {
    CheckpointBuilder b;
    add_layers(b, {O}, "int8", {1});
    b.add(O + ".input_scale", "F32", {1});
    if (!sym) b.add(O + ".input_zero_point", "I8", {1});
    b.config().quantization_config =
        config(args(8, "int", "tensor"), args(8, "int", "tensor", sym, false), "int-quantized");
    b.write();
    auto f = b.detect();
    const SchemeSpec s = f->spec_for(O);
    EXPECT_EQ(s.kind, SchemeKind::W8A8StaticUnfolded);
    EXPECT_EQ(s.weight.granularity, Granularity::Tensor);
    EXPECT_EQ(s.activation->symmetric, sym);
    EXPECT_EQ(roles_string(f->tensors_for(O, false)),
              sym ? "weight=I8[16,64] input_scale=F32[1] weight_scale=BF16[1]"
                  : "weight=I8[16,64] input_scale=F32[1] input_zero=I8[1] weight_scale=BF16[1]");
  }
}

TEST(CompressedTensors, W4A16PackedSymmetricAsymmetricChannelActorder) {
  {
    CheckpointBuilder b;
    add_layers(b, kAttn, "packed", {N, K / 32});
    b.config().quantization_config = config(args(4, "int", "group", true, false, 32), nullptr, "pack-quantized");
    b.write();
    auto f = b.detect();
    const SchemeSpec s = f->spec_for(Q);
    EXPECT_EQ(s.kind, SchemeKind::W4A16);
    EXPECT_EQ(s.encoding, WeightEncoding::Int4PackedInt32K);
    EXPECT_EQ(s.weight.group_size, 32);
    EXPECT_FALSE(s.activation);
    EXPECT_EQ(roles_string(f->tensors_for(Q, false)), "weight=I32[16,8] weight_scale=BF16[16,2]");
  }
  {
    CheckpointBuilder b;
    add_layers(b, kAttn, "packed_asym", {N, K / 32});
    b.config().quantization_config = config(args(4, "int", "group", false, false, 32), nullptr, "pack-quantized");
    b.write();
    auto f = b.detect();
    EXPECT_FALSE(f->spec_for(Q).weight.symmetric);
    EXPECT_EQ(roles_string(f->tensors_for(Q, false)), "weight=I32[16,8] weight_scale=BF16[16,2] weight_zero=I32[2,2]");
  }
  {
    CheckpointBuilder b;
    add_layers(b, {O}, "packed", {N, 1});
    b.config().quantization_config = config(args(4, "int", "channel"), nullptr, "pack-quantized");
    b.write();
    EXPECT_EQ(b.detect()->spec_for(O).weight.granularity, Granularity::Channel);
  }
  {
    CheckpointBuilder b;
    add_layers(b, {O}, "packed", {N, K / 32});
    b.add(O + ".weight_g_idx", "I32", {K});
    json w = args(4, "int", "group", true, false, 32);
    w["actorder"] = "group";
    b.config().quantization_config = config(w, nullptr, "pack-quantized");
    b.write();
    auto f = b.detect();
    EXPECT_TRUE(f->spec_for(O).has_g_idx);
    EXPECT_EQ(roles_string(f->tensors_for(O, false)), "weight=I32[16,8] weight_g_idx=I32[64] weight_scale=BF16[16,2]");
  }
}

TEST(CompressedTensors, PackedKNotMultipleOf8) {
  CheckpointBuilder b;
  b.add(O + ".weight_packed", "I32", {N, 3});
  b.add_i64(O + ".weight_shape", {N, 20});
  b.add(O + ".weight_scale", "BF16", {N, 1});
  b.config().quantization_config = config(args(4, "int", "channel"), nullptr, "pack-quantized");
  b.write();
  EXPECT_EQ(roles_string(b.detect()->tensors_for(O, false)), "weight=I32[16,3] weight_scale=BF16[16,1]");
}

TEST(CompressedTensors, Fp8PerChannelDynamicPerTensorStaticAndBlock) {
  {
    CheckpointBuilder b;
    add_layers(b, {O}, "fp8");
    b.config().quantization_config =
        config(args(8, "float", "channel"), args(8, "float", "token", true, true), "float-quantized");
    b.write();
    auto f = b.detect();
    EXPECT_EQ(f->spec_for(O).kind, SchemeKind::Fp8);
    EXPECT_EQ(f->spec_for(O).weight.kind, NumKind::FloatE4M3);
    EXPECT_EQ(f->spec_for(O).activation->granularity, Granularity::Token);
    EXPECT_EQ(roles_string(f->tensors_for(O, false)), "weight=F8_E4M3[16,64] weight_scale=BF16[16,1]");
  }
  {
    CheckpointBuilder b;
    add_layers(b, {O}, "fp8", {1});
    b.add(O + ".input_scale", "F32", {1});
    b.config().quantization_config = config(args(8, "float", "tensor"), args(8, "float", "tensor"), "float-quantized");
    b.write();
    auto f = b.detect();
    EXPECT_EQ(f->spec_for(O).activation->granularity, Granularity::Tensor);
    EXPECT_EQ(roles_string(f->tensors_for(O, false)), "weight=F8_E4M3[16,64] input_scale=F32[1] weight_scale=BF16[1]");
  }
  {
    CheckpointBuilder b;
    add_layers(b, {O}, "fp8", {2, 1});
    json w = args(8, "float", "block");
    w["block_structure"] = {8, 128};
    b.config().quantization_config = config(w, args(8, "float", "group", true, true, 128), "float-quantized");
    b.write();
    auto f = b.detect();
    const SchemeSpec s = f->spec_for(O);
    EXPECT_EQ(s.kind, SchemeKind::Fp8Block);
    EXPECT_EQ(s.weight.block_rows, 8);
    EXPECT_EQ(s.weight.group_size, 128);
    EXPECT_EQ(s.activation->group_size, 128);
    EXPECT_EQ(roles_string(f->tensors_for(O, false)), "weight=F8_E4M3[16,64] weight_scale=BF16[2,1]");
  }
}

TEST(CompressedTensors, TargetsRegexAnchoredAtStartOnlyAndPerGroupFormat) {
  CheckpointBuilder b;
  add_layers(b, {O}, "int8");
  add_layers(b, {L + "mlp.down_proj"}, "packed", {N, 2});
  add_layers(b, {L + "mlp.up_proj"}, "float");
  json qc = config(nullptr, nullptr, "mixed-precision");
  qc["config_groups"] = {{"attn",
                          {{"targets", {"re:.*o_proj"}},
                           {"format", "int-quantized"},
                           {"weights", args(8, "int", "channel")},
                           {"input_activations", args(8, "int", "token", true, true)}}},
                         {"mlp",
                          {{"targets", {"re:mlp\\.down_proj", "re:model\\.layers\\.\\d+\\.mlp\\.down"}},
                           {"format", "pack-quantized"},
                           {"weights", args(4, "int", "group", true, false, 32)}}}};
  b.config().quantization_config = qc;
  b.write();
  auto f = b.detect();
  EXPECT_EQ(f->spec_for(O).kind, SchemeKind::W8A8Dynamic);
  // "re:mlp\.down_proj" does not match at position 0; the second target matches a prefix only.
  EXPECT_EQ(f->spec_for(L + "mlp.down_proj").kind, SchemeKind::W4A16);
  EXPECT_EQ(f->spec_for(L + "mlp.down_proj").origin, "compressed-tensors:mlp");
  EXPECT_EQ(f->spec_for(L + "mlp.up_proj").origin, "compressed-tensors:untargeted");
}

TEST(CompressedTensors, IgnoreRulesRegexAndCaseInsensitiveSubstring) {
  CheckpointBuilder b;
  add_layers(b, {O}, "float");
  add_layers(b, {L + "mlp.down_proj"}, "float");
  add_layers(b, {L + "mlp.gate_proj"}, "int8");
  b.config().quantization_config =
      config(args(8, "int", "channel"), args(8, "int", "token", true, true), "int-quantized", json::array({"Linear"}),
             json::array({"re:.*o_proj$", "MLP.DOWN", "re:mlp"}));
  b.write();
  auto f = b.detect();
  EXPECT_EQ(f->spec_for(O).origin, "compressed-tensors:ignore");
  EXPECT_EQ(f->spec_for(L + "mlp.down_proj").origin, "compressed-tensors:ignore");
  EXPECT_EQ(f->spec_for(L + "mlp.gate_proj").kind, SchemeKind::W8A8Dynamic);  // "re:mlp" is anchored
}

TEST(CompressedTensors, PackedWeightShapeDisagrees) {
  CheckpointBuilder b;
  add_layers(b, {O}, "packed", {N, 2});
  b.add_i64(O + ".weight_shape", {N, 128});
  b.config().quantization_config = config(args(4, "int", "group", true, false, 32), nullptr, "pack-quantized");
  b.write();
  expect_error([&] { b.detect()->tensors_for(O, false); },
               {"model.safetensors", O + ".weight_packed", "disagrees with weight_shape [16, 128]"});
}

TEST(CompressedTensors, WrongScaleShapeAndMissingCompanions) {
  {
    CheckpointBuilder b;
    add_layers(b, {O}, "packed", {N, 4});
    b.config().quantization_config = config(args(4, "int", "group", true, false, 32), nullptr, "pack-quantized");
    b.write();
    expect_error([&] { b.detect()->tensors_for(O, false); },
                 {"model.safetensors", O + ".weight_scale", "expected [16, 2]"});
  }
  {
    CheckpointBuilder b;
    add_layers(b, {O}, "packed", {N, 2});
    b.config().quantization_config = config(args(4, "int", "group", false, false, 32), nullptr, "pack-quantized");
    b.write();
    expect_error([&] { b.detect()->tensors_for(O, false); }, {"needs tensor '" + O + ".weight_zero_point'"});
  }
  {
    CheckpointBuilder b;
    add_layers(b, {O}, "int8", {1});
    b.config().quantization_config = config(args(8, "int", "tensor"), args(8, "int", "tensor"), "int-quantized");
    b.write();
    expect_error([&] { b.detect()->tensors_for(O, false); },
                 {b.dir().path().string(), "needs tensor '" + O + ".input_scale'"});
  }
  {
    CheckpointBuilder b;
    add_layers(b, {O}, "packed", {N, 2});
    b.remove(O + ".weight_shape");
    b.config().quantization_config = config(args(4, "int", "group", true, false, 32), nullptr, "pack-quantized");
    b.write();
    expect_error([&] { b.detect()->tensors_for(O, false); }, {"needs tensor '" + O + ".weight_shape'"});
  }
}

TEST(CompressedTensors, FusedModulesMustAgreeOnIgnoreAndTarget) {
  {
    CheckpointBuilder b;
    add_layers(b, {Q, V}, "int8");
    add_layers(b, {KP}, "float");
    b.config().quantization_config = config(args(8, "int", "channel"), args(8, "int", "token", true, true),
                                            "int-quantized", json::array({"Linear"}), json::array({"re:.*k_proj"}));
    b.write();
    expect_error([&] { b.detect(); },
                 {"config.json", "fused modules must agree", "'" + KP + "' is ignored (by 're:.*k_proj')",
                  "'" + Q + "' is in config group 'group_0'"});
  }
  {
    CheckpointBuilder b;
    add_layers(b, {L + "mlp.gate_proj"}, "int8");
    add_layers(b, {L + "mlp.up_proj"}, "packed", {N, 2});
    json qc = config(nullptr, nullptr, "mixed-precision");
    qc["config_groups"] = {{"a",
                            {{"targets", {"re:.*gate_proj"}},
                             {"format", "int-quantized"},
                             {"weights", args(8, "int", "channel")},
                             {"input_activations", args(8, "int", "token", true, true)}}},
                           {"b",
                            {{"targets", {"re:.*up_proj"}},
                             {"format", "pack-quantized"},
                             {"weights", args(4, "int", "group", true, false, 32)}}}};
    b.config().quantization_config = qc;
    b.write();
    expect_error([&] { b.detect(); }, {"fused modules must agree", "config group 'a'", "config group 'b'"});
  }
}

TEST(CompressedTensors, TwoGroupsClaimingOneLayer) {
  CheckpointBuilder b;
  add_layers(b, {O}, "int8");
  json qc = config(nullptr, nullptr, "int-quantized");
  json g = {{"weights", args(8, "int", "channel")}, {"input_activations", args(8, "int", "token", true, true)}};
  qc["config_groups"] = {{"a", g}, {"b", g}};
  qc["config_groups"]["a"]["targets"] = {"re:.*o_proj"};
  qc["config_groups"]["b"]["targets"] = {O};
  b.config().quantization_config = qc;
  b.write();
  expect_error([&] { b.detect()->spec_for(O); }, {"matches targets of two config groups"});
}

TEST(CompressedTensors, UnsupportedFormatsAndSchemesAreRefusedByName) {
  struct Bad {
    json qc;
    std::string expect;
  };
  json w4 = args(4, "int", "group", true, false, 32);
  std::vector<Bad> cases = {
      {config(w4, nullptr, "nvfp4-pack-quantized"), "format 'nvfp4-pack-quantized' is not supported"},
      {config(w4, nullptr, "marlin-24"), "format 'marlin-24'"},
      {config(w4, nullptr, "naive-quantized"), "4-bit int strategy group group_size 32 symmetric without activation"},
      {config(w4, args(8, "int", "token", true, true), "pack-quantized"),
       "with input_activations 8-bit int strategy token"},
      {config(args(8, "int", "channel", false), args(8, "int", "token", true, true), "int-quantized"), "asymmetric"},
      {config(args(8, "int", "group", true, false, 32), args(8, "int", "token", true, true), "int-quantized"),
       "strategy group"},
      {config(args(8, "float", "channel"), args(8, "float", "group", true, true, 32), "float-quantized"),
       "float strategy group"},
  };
  for (const Bad& c : cases) {
    CheckpointBuilder b;
    add_layers(b, {O}, "int8");
    b.config().quantization_config = c.qc;
    b.write();
    expect_error([&] { b.detect(); }, {"config.json", "config_groups.group_0", c.expect});
  }
}

TEST(CompressedTensors, MalformedConfigNamesTheField) {
  json good = config(args(8, "int", "channel"), args(8, "int", "token", true, true), "int-quantized");
  auto with = [&](auto&& edit) {
    json qc = good;
    edit(qc);
    return qc;
  };
  std::vector<std::pair<json, std::string>> cases = {
      {with([](json& q) { q.erase("config_groups"); }),
       "'quantization_config.config_groups' must be a non-empty object"},
      {with([](json& q) { q["config_groups"]["group_0"]["weights"]["num_bits"] = "8"; }),
       "'quantization_config.config_groups.group_0.weights.num_bits' must be an integer"},
      {with([](json& q) { q["config_groups"]["group_0"]["weights"]["strategy"] = "row"; }),
       "weights.strategy' = 'row'"},
      {with([](json& q) { q["config_groups"]["group_0"]["weights"]["type"] = "mx"; }), "weights.type' = 'mx'"},
      {with([](json& q) { q["config_groups"]["group_0"]["weights"]["strategy"] = "group"; }),
       "weights.group_size' must be > 0"},
      {with([](json& q) { q["config_groups"]["group_0"]["weights"]["dynamic"] = "yes"; }), "weights.dynamic'"},
      {with([](json& q) { q["config_groups"]["group_0"]["weights"]["actorder"] = 3; }), "weights.actorder'"},
      {with([](json& q) { q["config_groups"]["group_0"]["weights"]["strategy"] = "block"; }),
       "block_structure' is required"},
      {with([](json& q) { q["config_groups"]["group_0"].erase("targets"); }), "group_0.targets' is required"},
      {with([](json& q) { q["config_groups"]["group_0"]["targets"] = {"re:(unclosed"}; }),
       "invalid regular expression"},
      {with([](json& q) { q["config_groups"]["group_0"]["targets"] = "Linear"; }), "targets' must be a list"},
      {with([](json& q) { q["ignore"] = {1}; }), "quantization_config.ignore'[0] must be a string"},
      {with([](json& q) { q["format"] = "mixed-precision"; }), "group_0.format' is required"},
      {with([](json& q) {
         q["sparsity_config"] = {{"format", "sparse-24-bitmask"}};
       }),
       "'quantization_config.sparsity_config'"},
      {with([](json& q) {
         q["kv_cache_scheme"] = {{"num_bits", 8}};
       }),
       "'quantization_config.kv_cache_scheme'"},
      {with([](json& q) { q["quantization_status"] = "frozen"; }), "quantization_status' = 'frozen'"},
      {with([](json& q) { q["config_groups"]["group_0"]["output_activations"] = args(8, "int", "token"); }),
       "output_activations' is not supported"},
  };
  for (const auto& [qc, expect] : cases) {
    CheckpointBuilder b;
    add_layers(b, {O}, "int8");
    b.config().quantization_config = qc;
    b.write();
    expect_error([&] { b.detect(); }, {"config.json", expect});
  }
}

TEST(CompressedTensors, StrategyInferredFromGroupSizeAsTheLibraryDoes) {
  CheckpointBuilder b;
  add_layers(b, {O}, "packed", {N, 2});
  json w = {{"num_bits", 4}, {"type", "int"}, {"symmetric", true}, {"group_size", 32}};
  b.config().quantization_config = config(w, nullptr, "pack-quantized");
  b.write();
  EXPECT_EQ(b.detect()->spec_for(O).weight.granularity, Granularity::Group);
}

}  // namespace
}  // namespace lowbit::testing
