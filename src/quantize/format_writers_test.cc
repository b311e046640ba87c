// The three format writers end to end on a tiny random float Qwen3 folder: quantize_model
// writes it, then lowbit's own readers (detect_format, Format::spec_for / tensors_for) load
// it, and for every layer the stored codes, unpacked with core/int4_packing.h, and the
// stored scales equal what the reference quantizer (kernels/reference/quantize_ref.h)
// gives for the same float weight, exactly (same integer codes; scales equal after the
// rounding to the stored dtype). Also: FLOAT layers are byte copies, non-linear tensors are
// copied, and the metadata files say what the spec says.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/int4_packing.h"
#include "core/quant_types.h"
#include "formats/format.h"
#include "io/checkpoint.h"
#include "io/json_util.h"
#include "io/model_config.h"
#include "io/test_util.h"
#include "kernels/reference/quantize_ref.h"
#include "quantize/quantize_model.h"

namespace lowbit::quantize {
namespace {

using testing::TempDir;
namespace fs = std::filesystem;

constexpr int64_t H = 64, I = 128, V = 96, HD = 32;

// A 1-layer Qwen3 (hidden 64, 2 heads / 1 kv head of 32, ffn 128, vocab 96) in bf16.
struct TinyModel {
  TempDir dir;
  std::map<std::string, std::vector<float>> weights;  // bf16-exact values
  TinyModel() {
    nlohmann::json cfg = {{"architectures", {"Qwen3ForCausalLM"}}, {"model_type", "qwen3"}, {"hidden_size", H},
                          {"intermediate_size", I}, {"num_hidden_layers", 1}, {"num_attention_heads", 2},
                          {"num_key_value_heads", 1}, {"head_dim", HD}, {"vocab_size", V},
                          {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-6}, {"rope_theta", 1000000.0},
                          {"tie_word_embeddings", true}, {"torch_dtype", "bfloat16"}, {"hidden_act", "silu"},
                          {"attention_bias", false}};
    dir.write("config.json", cfg.dump(2));
    dir.write("tokenizer_config.json", "{}");
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 0.125f);
    std::vector<testing::TensorSpec> specs;
    auto add = [&](const std::string& name, std::vector<int64_t> shape, bool ones) {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      std::vector<float> v(static_cast<size_t>(n));
      std::string bytes(size_t(n) * 2, '\0');
      for (int64_t i = 0; i < n; ++i) {
        // A few outliers so scales differ between rows and groups.
        float x = ones ? 1.0f + nd(rng) : nd(rng) * (i % 37 == 0 ? 6.0f : 1.0f);
        const uint16_t b = f32_to_bf16(x);
        v[size_t(i)] = bf16_to_f32(b);
        std::memcpy(&bytes[size_t(2 * i)], &b, 2);
      }
      weights[name] = v;
      specs.push_back({name, "BF16", std::move(shape), bytes});
    };
    add("model.embed_tokens.weight", {V, H}, false);
    add("model.norm.weight", {H}, true);
    const std::string p = "model.layers.0.";
    add(p + "input_layernorm.weight", {H}, true);
    add(p + "post_attention_layernorm.weight", {H}, true);
    add(p + "self_attn.q_norm.weight", {HD}, true);
    add(p + "self_attn.k_norm.weight", {HD}, true);
    add(p + "self_attn.q_proj.weight", {2 * HD, H}, false);
    add(p + "self_attn.k_proj.weight", {HD, H}, false);
    add(p + "self_attn.v_proj.weight", {HD, H}, false);
    add(p + "self_attn.o_proj.weight", {H, 2 * HD}, false);
    add(p + "mlp.gate_proj.weight", {I, H}, false);
    add(p + "mlp.up_proj.weight", {I, H}, false);
    add(p + "mlp.down_proj.weight", {H, I}, false);
    dir.write("model.safetensors", testing::make_safetensors(specs));
    dir.write("calib.json", "[1, 5, 9, 2, 77, 3, 40, 41, 8, 0, 95, 12, 6, 33, 21, 17]");
  }
};

TinyModel& model() {
  static TinyModel m;
  return m;
}

struct Written {
  TempDir out;
  QuantReport report;
  ModelConfig config;
  std::unique_ptr<Checkpoint> ckpt;
  std::unique_ptr<Format> format;
};

std::unique_ptr<Written> write(OutFormat f, const std::string& scheme, std::vector<std::string> overrides = {},
                               std::optional<int64_t> group = {}, bool calib = false) {
  auto w = std::make_unique<Written>();
  QuantizeOptions o;
  o.input = model().dir.path();
  o.output = w->out.path() / "q";
  o.plan.format = f;
  o.plan.scheme = scheme;
  o.plan.overrides = std::move(overrides);
  o.plan.group_size = group;
  o.threads = 2;
  if (calib) {
    o.calib_ids = model().dir.path() / "calib.json";
    o.calib_seq_len = 8;
  }
  w->report = quantize_model(o);
  w->config = load_model_config(o.output);
  w->ckpt = std::make_unique<Checkpoint>(o.output);
  w->format = detect_format(*w->ckpt, w->config);
  return w;
}

std::vector<float> floats(const TensorView& v) {
  std::vector<float> out(size_t(v.numel()));
  convert_to_f32(v.dtype, v.data, out.data(), out.size());
  return out;
}
std::vector<int8_t> int8s(const TensorView& v) {
  std::vector<int8_t> out(size_t(v.numel()));
  std::memcpy(out.data(), v.data, out.size());
  return out;
}
// Scales as stored in `dtype` (what a writer computing in fp32 then casting would store).
std::vector<float> stored(const std::vector<float>& s, DType dtype) {
  std::vector<float> out(s);
  for (float& x : out)
    x = dtype == DType::BF16 ? bf16_to_f32(f32_to_bf16(x)) : dtype == DType::F16 ? f16_to_f32(f32_to_f16(x)) : x;
  return out;
}

const char* kLayers[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                         "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

struct LayerRef {
  std::string prefix;
  std::vector<float> w;
  int64_t n, k;
};
std::vector<LayerRef> layers() {
  std::vector<LayerRef> out;
  for (const char* l : kLayers) {
    const std::string p = std::string("model.layers.0.") + l;
    const bool down = std::string(l) == "mlp.down_proj";
    const int64_t k = down ? I : H;
    const auto& w = model().weights.at(p + ".weight");
    out.push_back({p, w, int64_t(w.size()) / k, k});
  }
  return out;
}

void expect_copied_non_linear(const Written& w) {
  for (const char* name : {"model.embed_tokens.weight", "model.norm.weight", "model.layers.0.self_attn.q_norm.weight"}) {
    const TensorView v = w.ckpt->get(name);
    EXPECT_EQ(floats(v), model().weights.at(name)) << name;
  }
  EXPECT_TRUE(fs::exists(w.out.path() / "q" / "tokenizer_config.json"));
}

// ---- msmodelslim ---------------------------------------------------------------------
TEST(MsModelSlimWriter, IntSchemesMatchReferenceQuantizer) {
  for (const std::string scheme : {"W8A8_DYNAMIC", "W4A4_DYNAMIC", "W4A8_DYNAMIC"}) {
    SCOPED_TRACE(scheme);
    auto w = write(OutFormat::MsModelSlim, scheme, {".*down_proj=FLOAT"});
    ASSERT_EQ(w->format->name(), "msmodelslim");
    expect_copied_non_linear(*w);
    for (const LayerRef& l : layers()) {
      SCOPED_TRACE(l.prefix);
      const SchemeSpec spec = w->format->spec_for(l.prefix);
      const LinearTensors t = w->format->tensors_for(l.prefix, false);
      if (l.prefix.ends_with("down_proj")) {
        EXPECT_EQ(spec.kind, SchemeKind::Float);
        EXPECT_EQ(floats(t.weight), l.w);
        continue;
      }
      const int bits = scheme == "W8A8_DYNAMIC" ? 8 : 4;
      const IntWeightQuant ref = quantize_weight_sym(l.w.data(), l.n, l.k, bits, 0, IntScaleRule::QMax);
      std::vector<int8_t> codes(size_t(l.n * l.k));
      if (scheme == "W4A8_DYNAMIC") {
        EXPECT_EQ(spec.kind, SchemeKind::W4A8Dynamic);
        EXPECT_EQ(spec.encoding, WeightEncoding::Int4PackedRowPairs);
        unpack_int4(WeightEncoding::Int4PackedRowPairs, t.weight, l.n, l.k, codes.data());
      } else {
        EXPECT_EQ(spec.kind, bits == 8 ? SchemeKind::W8A8Dynamic : SchemeKind::W4A4Dynamic);
        codes = int8s(t.weight);
      }
      EXPECT_EQ(codes, ref.q);
      EXPECT_EQ(floats(*t.find("weight_scale")), ref.scale);
      EXPECT_EQ(floats(*t.find("weight_zero")), std::vector<float>(size_t(l.n), 0.0f));
    }
    const auto desc = nlohmann::json::parse(read_text_file(w->out.path() / "q" / "quant_model_description.json"));
    EXPECT_EQ(desc["version"], "1.0.0");
    EXPECT_EQ(desc["model.embed_tokens.weight"], "FLOAT");
    EXPECT_EQ(desc["model.layers.0.mlp.down_proj.weight"], "FLOAT");
    EXPECT_EQ(desc["model.layers.0.self_attn.q_proj.weight_scale"], scheme);
    // model_quant_type is the upstream summary, which never names W4A8_DYNAMIC.
    EXPECT_EQ(desc["model_quant_type"], scheme == "W4A8_DYNAMIC" ? "FLOAT" : scheme);
    EXPECT_EQ(desc["group_size"], 0);
    // Every tensor of the file has an entry.
    for (const std::string& name : w->ckpt->names()) EXPECT_TRUE(desc.contains(name)) << name;
    EXPECT_FALSE(nlohmann::json::parse(read_text_file(w->out.path() / "q" / "config.json")).contains("quantization_config"));
  }
}

TEST(MsModelSlimWriter, W4A8PerGroupIsTwoLevel) {
  auto w = write(OutFormat::MsModelSlim, "W4A8_DYNAMIC", {}, 32);
  const auto desc = nlohmann::json::parse(read_text_file(w->out.path() / "q" / "quant_model_description.json"));
  EXPECT_EQ(desc["group_size"], 32);
  for (const LayerRef& l : layers()) {
    SCOPED_TRACE(l.prefix);
    const SchemeSpec spec = w->format->spec_for(l.prefix);
    EXPECT_EQ(spec.weight.granularity, Granularity::Group);
    EXPECT_EQ(spec.weight.group_size, 32);
    const LinearTensors t = w->format->tensors_for(l.prefix, false);
    const IntWeightQuant q8 = quantize_weight_sym(l.w.data(), l.n, l.k, 8, 0, IntScaleRule::QMax);
    const std::vector<float> w8(q8.q.begin(), q8.q.end());
    const IntWeightQuant q4 = quantize_weight_sym(w8.data(), l.n, l.k, 4, 32, IntScaleRule::QMax);
    std::vector<int8_t> codes(size_t(l.n * l.k));
    unpack_int4(WeightEncoding::Int4PackedRowPairs, t.weight, l.n, l.k, codes.data());
    EXPECT_EQ(codes, q4.q);
    EXPECT_EQ(floats(*t.find("weight_scale")), q8.scale);
    EXPECT_EQ(floats(*t.find("weight_scale_second")), q4.scale);
  }
}

TEST(MsModelSlimWriter, MxSchemesMatchReferenceQuantizer) {
  for (const std::string scheme : {"W8A8_MXFP8", "W4A8_MXFP", "W4A4_MXFP4"}) {
    SCOPED_TRACE(scheme);
    auto w = write(OutFormat::MsModelSlim, scheme);
    const bool fp4 = scheme != "W8A8_MXFP8";
    for (const LayerRef& l : layers()) {
      const SchemeSpec spec = w->format->spec_for(l.prefix);
      EXPECT_EQ(spec.kind, fp4 ? SchemeKind::Mxfp4 : SchemeKind::Mxfp8);
      const LinearTensors t = w->format->tensors_for(l.prefix, false);
      std::vector<uint8_t> codes(size_t(l.n * l.k)), scales(size_t(l.n * l.k / 32));
      quantize_mx(l.w.data(), l.n, l.k, fp4 ? MxElem::E2M1 : MxElem::E4M3,
                  fp4 ? MxScaleRule::MsModelSlimFp4 : MxScaleRule::MsModelSlimFp8, codes.data(), scales.data());
      std::vector<uint8_t> got(size_t(l.n * l.k));
      if (fp4) {
        std::vector<int8_t> c(got.size());
        unpack_int4(WeightEncoding::Fp4PackedK, t.weight, l.n, l.k, c.data());
        std::memcpy(got.data(), c.data(), c.size());
      } else {
        std::memcpy(got.data(), t.weight.data, got.size());
      }
      EXPECT_EQ(got, codes) << l.prefix;
      const TensorView* s = t.find("weight_scale");
      EXPECT_EQ(std::vector<uint8_t>(static_cast<const uint8_t*>(s->data), static_cast<const uint8_t*>(s->data) + s->numel()),
                scales);
    }
  }
}

TEST(MsModelSlimWriter, W8A8StaticFoldsScalesAndZeroPoint) {
  auto w = write(OutFormat::MsModelSlim, "W8A8_DYNAMIC", {".*self_attn.*=W8A8"}, {}, true);
  for (const LayerRef& l : layers()) {
    if (l.prefix.find("self_attn") == std::string::npos) continue;
    SCOPED_TRACE(l.prefix);
    EXPECT_EQ(w->format->spec_for(l.prefix).kind, SchemeKind::W8A8Static);
    const LinearTensors t = w->format->tensors_for(l.prefix, false);
    const IntWeightQuant ref = quantize_weight_sym(l.w.data(), l.n, l.k, 8, 0, IntScaleRule::QMax);
    EXPECT_EQ(int8s(t.weight), ref.q);
    const float s = floats(*t.find("input_scale"))[0], off = floats(*t.find("input_zero"))[0];
    EXPECT_GT(s, 0.0f);
    EXPECT_EQ(off, std::nearbyint(off));
    ASSERT_EQ(t.find("deq_scale")->dtype, DType::F32);  // bf16 model: fp32 deq_scale upstream
    const std::vector<float> deq = floats(*t.find("deq_scale"));
    const TensorView* qb = t.find("quant_bias");
    for (int64_t j = 0; j < l.n; ++j) {
      EXPECT_EQ(deq[size_t(j)], s * ref.scale[size_t(j)]);
      float sum = 0;
      for (int64_t i = 0; i < l.k; ++i) sum += float(ref.q[size_t(j * l.k + i)]);
      int32_t got;
      std::memcpy(&got, static_cast<const char*>(qb->data) + 4 * j, 4);
      EXPECT_EQ(got, int32_t(std::nearbyint(0.0f / deq[size_t(j)] - sum * off)));  // no float bias
    }
    // With calibration every layer has an output error, and it is small for int8.
    for (const LayerReport& r : w->report.layers) {
      ASSERT_TRUE(r.output_rel.has_value()) << r.name;
      EXPECT_LT(*r.output_rel, 0.05) << r.name;
    }
  }
}

// ---- compressed-tensors --------------------------------------------------------------
TEST(CompressedTensorsWriter, SchemesMatchReferenceQuantizer) {
  struct Case {
    std::string scheme;
    SchemeKind kind;
    bool calib;
  };
  for (const Case& c : std::vector<Case>{{"W8A8", SchemeKind::W8A8Dynamic, false},
                                         {"W8A8_STATIC", SchemeKind::W8A8StaticUnfolded, true},
                                         {"W8A8_STATIC_ASYM", SchemeKind::W8A8StaticUnfolded, true},
                                         {"W4A16", SchemeKind::W4A16, false},
                                         {"W4A16_ASYM", SchemeKind::W4A16, false},
                                         {"FP8", SchemeKind::Fp8, true},
                                         {"FP8_DYNAMIC", SchemeKind::Fp8, false},
                                         {"FP8_BLOCK", SchemeKind::Fp8Block, false}}) {
    SCOPED_TRACE(c.scheme);
    auto w = write(OutFormat::CompressedTensors, c.scheme, {}, 32, c.calib);
    ASSERT_EQ(w->format->name(), "compressed-tensors");
    expect_copied_non_linear(*w);
    for (const LayerRef& l : layers()) {
      SCOPED_TRACE(l.prefix);
      EXPECT_EQ(w->format->spec_for(l.prefix).kind, c.kind);
      const LinearTensors t = w->format->tensors_for(l.prefix, false);
      const TensorView& scale = *t.find("weight_scale");
      EXPECT_EQ(scale.dtype, DType::BF16);  // scales in the model's dtype
      if (c.scheme.starts_with("W4A16")) {
        const bool sym = c.scheme == "W4A16";
        const IntWeightQuant ref = sym ? quantize_weight_sym(l.w.data(), l.n, l.k, 4, 32, IntScaleRule::CompressedTensors,
                                                             ComputeDType::BF16)
                                       : quantize_weight_asym_ct(l.w.data(), l.n, l.k, 4, 32, ComputeDType::BF16);
        std::vector<int8_t> codes(size_t(l.n * l.k));
        unpack_int4(WeightEncoding::Int4PackedInt32K, t.weight, l.n, l.k, codes.data());
        EXPECT_EQ(codes, ref.q);
        EXPECT_EQ(floats(scale), ref.scale);  // already bf16 values: computed in bf16
        if (!sym) {
          std::vector<int8_t> zp(size_t(l.n * ref.groups));
          unpack_int4_zero_points_n(*t.find("weight_zero"), l.n, ref.groups, zp.data());
          EXPECT_EQ(zp, ref.zero);
        }
      } else if (c.scheme.starts_with("W8A8")) {
        const IntWeightQuant ref =
            quantize_weight_sym(l.w.data(), l.n, l.k, 8, 0, IntScaleRule::CompressedTensors, ComputeDType::BF16);
        EXPECT_EQ(int8s(t.weight), ref.q);
        EXPECT_EQ(floats(scale), ref.scale);
        EXPECT_EQ(t.find("input_scale") != nullptr, c.calib);
        EXPECT_EQ(t.find("input_zero") != nullptr, c.scheme == "W8A8_STATIC_ASYM");
      } else {
        const Fp8Granularity g = c.scheme == "FP8"           ? Fp8Granularity::Tensor
                                 : c.scheme == "FP8_DYNAMIC" ? Fp8Granularity::Channel
                                                             : Fp8Granularity::Block;
        const Fp8WeightQuant ref = quantize_weight_fp8(l.w.data(), l.n, l.k, g, 128, ComputeDType::BF16);
        std::vector<uint8_t> got(size_t(l.n * l.k));
        std::memcpy(got.data(), t.weight.data, got.size());
        EXPECT_EQ(got, ref.q);
        EXPECT_EQ(floats(scale), ref.scale);
      }
    }
    const auto qc = nlohmann::json::parse(read_text_file(w->out.path() / "q" / "config.json"))["quantization_config"];
    EXPECT_EQ(qc["quant_method"], "compressed-tensors");
    EXPECT_EQ(qc["config_groups"].size(), 1u);
    EXPECT_EQ(qc["config_groups"]["group_0"]["targets"], nlohmann::json::array({"Linear"}));
    EXPECT_EQ(qc["ignore"], nlohmann::json::array({"lm_head"}));
  }
}

TEST(CompressedTensorsWriter, MixedSchemesBecomeSeveralGroups) {
  auto w = write(OutFormat::CompressedTensors, "W8A8", {".*self_attn.*=W4A16", ".*down_proj=FLOAT"}, 32);
  const auto qc = nlohmann::json::parse(read_text_file(w->out.path() / "q" / "config.json"))["quantization_config"];
  EXPECT_EQ(qc["format"], "mixed-precision");
  ASSERT_EQ(qc["config_groups"].size(), 2u);
  EXPECT_EQ(qc["config_groups"]["group_0"]["format"], "pack-quantized");
  EXPECT_EQ(qc["config_groups"]["group_1"]["format"], "int-quantized");
  EXPECT_EQ(qc["ignore"], nlohmann::json::array({"model.layers.0.mlp.down_proj", "lm_head"}));
  EXPECT_EQ(w->format->spec_for("model.layers.0.self_attn.o_proj").kind, SchemeKind::W4A16);
  EXPECT_EQ(w->format->spec_for("model.layers.0.mlp.up_proj").kind, SchemeKind::W8A8Dynamic);
  EXPECT_EQ(w->format->spec_for("model.layers.0.mlp.down_proj").kind, SchemeKind::Float);
}

// ---- AWQ -----------------------------------------------------------------------------
TEST(AwqWriter, GemmLayoutMatchesReferenceQuantizer) {
  auto w = write(OutFormat::Awq, "W4A16", {".*down_proj=FLOAT"}, 32);
  ASSERT_EQ(w->format->name(), "awq");
  expect_copied_non_linear(*w);
  for (const LayerRef& l : layers()) {
    SCOPED_TRACE(l.prefix);
    const SchemeSpec spec = w->format->spec_for(l.prefix);
    if (l.prefix.ends_with("down_proj")) {
      EXPECT_EQ(spec.kind, SchemeKind::Float);
      continue;
    }
    EXPECT_EQ(spec.kind, SchemeKind::W4A16);
    const LinearTensors t = w->format->tensors_for(l.prefix, false);
    std::vector<float> w16 = stored(l.w, DType::F16);
    const IntWeightQuant ref = quantize_weight_awq(w16.data(), l.n, l.k, 32, ComputeDType::F16);
    std::vector<int8_t> codes(size_t(l.n * l.k));
    unpack_int4(WeightEncoding::Int4AwqGemm, t.weight, l.n, l.k, codes.data());
    EXPECT_EQ(codes, ref.q);
    std::vector<uint8_t> zeros(size_t(l.n * ref.groups));
    unpack_awq_zeros(*t.find("weight_zero"), l.n, ref.groups, zeros.data());
    EXPECT_EQ(std::vector<int8_t>(zeros.begin(), zeros.end()), ref.zero);
    const std::vector<float> scales = floats(*t.find("weight_scale"));  // [G, N]
    for (int64_t row = 0; row < l.n; ++row)
      for (int64_t g = 0; g < ref.groups; ++g)
        EXPECT_EQ(scales[size_t(g * l.n + row)], ref.scale[size_t(row * ref.groups + g)]);
  }
  const auto qc = nlohmann::json::parse(read_text_file(w->out.path() / "q" / "config.json"))["quantization_config"];
  EXPECT_EQ(qc["modules_to_not_convert"], nlohmann::json::array({"model.layers.0.mlp.down_proj"}));
  EXPECT_EQ(qc["group_size"], 32);
  EXPECT_FALSE(w->report.notes.empty());  // says RTN, no activation-aware search
}

TEST(QuantizeModel, StaticWithoutCalibrationIsAnError) {
  testing::expect_error([] { write(OutFormat::CompressedTensors, "FP8"); }, {"FP8", "--calib"});
  testing::expect_error([] { write(OutFormat::MsModelSlim, "W8A8"); }, {"W8A8", "calibration data"});
}

}  // namespace
}  // namespace lowbit::quantize
