// Test-only: prints, as JSON, what the formats make of a model folder — per linear layer of
// the decoder, the SchemeSpec and the role -> (tensor, dtype, shape) map. Used by
// tests/python/test_formats_ct.py to compare our parser with real compressed-tensors folders.
//   format_tool DIR
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/format.h"

namespace {
using lowbit::QuantArgs;
using nlohmann::ordered_json;

const char* granularity_name(lowbit::Granularity g) {
  switch (g) {
    case lowbit::Granularity::Tensor:
      return "tensor";
    case lowbit::Granularity::Channel:
      return "channel";
    case lowbit::Granularity::Token:
      return "token";
    case lowbit::Granularity::Group:
      return "group";
    case lowbit::Granularity::Block:
      return "block";
  }
  return "?";
}

const char* num_kind_name(lowbit::NumKind k) {
  switch (k) {
    case lowbit::NumKind::Int:
      return "int";
    case lowbit::NumKind::FloatE4M3:
      return "e4m3";
    case lowbit::NumKind::FloatE2M1:
      return "e2m1";
  }
  return "?";
}

const char* encoding_name(lowbit::WeightEncoding e) {
  switch (e) {
    case lowbit::WeightEncoding::Native:
      return "native";
    case lowbit::WeightEncoding::Int4InInt8:
      return "int4_in_int8";
    case lowbit::WeightEncoding::Int4PackedRowPairs:
      return "int4_packed_row_pairs";
    case lowbit::WeightEncoding::Int4PackedInt32K:
      return "int4_packed_int32_k";
    case lowbit::WeightEncoding::Int4AwqGemm:
      return "int4_awq_gemm";
    case lowbit::WeightEncoding::Fp4PackedK:
      return "fp4_packed_k";
  }
  return "?";
}

ordered_json args_json(const QuantArgs& a) {
  return {{"bits", a.bits},
          {"kind", num_kind_name(a.kind)},
          {"granularity", granularity_name(a.granularity)},
          {"group_size", a.group_size},
          {"block_rows", a.block_rows},
          {"symmetric", a.symmetric},
          {"dynamic", a.dynamic}};
}

ordered_json tensor_json(const lowbit::TensorView& v) {
  return {{"name", v.name}, {"dtype", std::string(lowbit::dtype_name(v.dtype))}, {"shape", v.shape}};
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: format_tool DIR\n");
    return 2;
  }
  try {
    const std::filesystem::path dir = argv[1];
    const lowbit::ModelConfig config = lowbit::load_model_config(dir);
    const lowbit::Checkpoint ckpt(dir);
    const auto format = lowbit::detect_format(ckpt, config);
    ordered_json out = {{"format", std::string(format->name())}, {"layers", ordered_json::object()}};
    const char* attn[] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    const char* mlp[] = {"gate_proj", "up_proj", "down_proj"};
    for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
      std::vector<std::pair<std::string, bool>> layers;
      const std::string p = "model.layers." + std::to_string(i) + ".";
      for (const char* a : attn) layers.emplace_back(p + "self_attn." + a, config.attention_bias);
      for (const char* m : mlp) layers.emplace_back(p + "mlp." + m, config.mlp_bias);
      for (const auto& [prefix, bias] : layers) {
        const lowbit::SchemeSpec s = format->spec_for(prefix);
        const lowbit::LinearTensors t = format->tensors_for(prefix, bias);
        ordered_json spec = {{"kind", std::string(lowbit::scheme_kind_name(s.kind))},
                             {"origin", s.origin},
                             {"encoding", encoding_name(s.encoding)},
                             {"has_g_idx", s.has_g_idx},
                             {"weight", args_json(s.weight)},
                             {"activation", s.activation ? args_json(*s.activation) : ordered_json(nullptr)}};
        ordered_json tensors = {{"weight", tensor_json(t.weight)}};
        if (t.bias) tensors["bias"] = tensor_json(*t.bias);
        for (const auto& [role, v] : t.extra) tensors[role] = tensor_json(v);
        out["layers"][prefix] = {{"spec", spec}, {"tensors", tensors}};
      }
    }
    std::printf("%s\n", out.dump(1).c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
