#include <gtest/gtest.h>

#include "formats/formats_test_util.h"

namespace lowbit::testing {
namespace {

using nlohmann::json;
constexpr int64_t N = 32, K = 64, G = 32;
const std::string Q = "model.layers.0.self_attn.q_proj", KP = "model.layers.0.self_attn.k_proj";

json awq_config() {
  return {{"quant_method", "awq"}, {"bits", 4},         {"group_size", G},
          {"zero_point", true},    {"version", "gemm"}, {"modules_to_not_convert", nullptr}};
}

void add_layer(CheckpointBuilder& b, const std::string& p) {
  b.add(p + ".qweight", "I32", {K, N / 8});
  b.add(p + ".qzeros", "I32", {K / G, N / 8});
  b.add(p + ".scales", "F16", {K / G, N});
}

TEST(Awq, GemmLayerLoads) {
  CheckpointBuilder b;
  add_layer(b, Q);
  b.add(Q + ".bias", "F16", {N});
  b.config().quantization_config = awq_config();
  b.write();
  auto f = b.detect();
  EXPECT_EQ(f->name(), "awq");
  const SchemeSpec s = f->spec_for(Q);
  EXPECT_EQ(s.kind, SchemeKind::W4A16);
  EXPECT_EQ(s.encoding, WeightEncoding::Int4AwqGemm);
  EXPECT_EQ(s.weight.group_size, G);
  EXPECT_FALSE(s.weight.symmetric);
  EXPECT_FALSE(s.activation);
  EXPECT_EQ(roles_string(f->tensors_for(Q, true)),
            "weight=I32[64,4] bias=F16[32] weight_scale=F16[2,32] weight_zero=I32[2,4]");
}

TEST(Awq, ModulesToNotConvertStayFloat) {
  CheckpointBuilder b;
  add_layer(b, Q);
  b.add("model.layers.0.mlp.gate.weight", "BF16", {8, K});
  json qc = awq_config();
  qc["modules_to_not_convert"] = {"mlp.gate"};
  b.config().quantization_config = qc;
  b.write();
  auto f = b.detect();
  EXPECT_EQ(f->spec_for("model.layers.0.mlp.gate").kind, SchemeKind::Float);
  EXPECT_EQ(roles_string(f->tensors_for("model.layers.0.mlp.gate", false)), "weight=BF16[8,64]");
}

TEST(Awq, ConfigRefusals) {
  std::vector<std::pair<std::string, json>> edits = {
      {"field 'quantization_config.bits' = 8", {{"bits", 8}}},
      {"field 'quantization_config.version' = 'gemv'", {{"version", "GEMV"}}},
      {"field 'quantization_config.version' = 'marlin'", {{"version", "marlin"}}},
      {"field 'quantization_config.zero_point' = false", {{"zero_point", false}}},
      {"field 'quantization_config.group_size' = 0", {{"group_size", 0}}},
      {"field 'quantization_config.group_size' must be an integer", {{"group_size", "128"}}},
      {"modules_to_not_convert' must be a list", {{"modules_to_not_convert", "lm_head"}}},
  };
  for (const auto& [expect, edit] : edits) {
    CheckpointBuilder b;
    add_layer(b, Q);
    json qc = awq_config();
    qc.update(edit);
    b.config().quantization_config = qc;
    b.write();
    expect_error([&] { b.detect(); }, {"config.json", expect});
  }
}

TEST(Awq, TensorErrors) {
  {
    CheckpointBuilder b;
    add_layer(b, Q);
    b.set_shape(Q + ".qzeros", {K / G, N});
    b.config().quantization_config = awq_config();
    b.write();
    expect_error([&] { b.detect()->tensors_for(Q, false); }, {"model.safetensors", Q + ".qzeros", "expected [2, 4]"});
  }
  {
    CheckpointBuilder b;
    add_layer(b, Q);
    b.remove(Q + ".scales");
    b.config().quantization_config = awq_config();
    b.write();
    expect_error([&] { b.detect()->tensors_for(Q, false); }, {"needs tensor '" + Q + ".scales'"});
  }
  {
    CheckpointBuilder b;
    add_layer(b, Q);
    b.set_shape(Q + ".qweight", {48, N / 8});
    b.config().quantization_config = awq_config();
    b.write();
    expect_error([&] { b.detect()->tensors_for(Q, false); },
                 {Q + ".qweight", "K = 48 is not a multiple of group_size 32"});
  }
}

TEST(Awq, FusedModulesMustAgree) {
  CheckpointBuilder b;
  add_layer(b, Q);
  b.add(KP + ".weight", "BF16", {N, K});
  json qc = awq_config();
  qc["modules_to_not_convert"] = {"k_proj"};
  b.config().quantization_config = qc;
  b.write();
  expect_error([&] { b.detect(); },
               {"config.json", "fused modules must share one scheme", "'" + KP + "' is FLOAT", "'" + Q + "' is W4A16"});
}

}  // namespace
}  // namespace lowbit::testing
