#include "tools/bench/model_costs.h"

#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/runtime_options.h"
#include <algorithm>

#include "models/decoder.h"
#include "schemes/moe_method.h"

namespace lowbit {

namespace {

struct LinearTotals {
  double layer_bytes = 0, head_bytes = 0, layer_params = 0, head_params = 0;
};

// A token reads each MoE layer's router and top_k of its experts (the bytes of k distinct
// experts: a decoded token's k choices are distinct).
LinearTotals linear_totals(DecoderModel& model) {
  LinearTotals t;
  const auto& c = model.config();
  model.for_each_moe([&](const std::string&, const LinearMethod& router, const MoeMethod& experts) {
    const double k = double(experts.routing().top_k);
    t.layer_bytes += double(router.weight_bytes()) + k * double(experts.expert_weight_bytes());
    t.layer_params += double(router.in_features()) * double(router.out_features()) +
                      k * 3.0 * double(c.hidden_size) * double(c.moe.moe_intermediate_size);
  });
  model.for_each_linear([&](const std::string& prefix, std::unique_ptr<LinearMethod>& m) {
    const double params = double(m->in_features()) * double(m->out_features());
    if (prefix == "lm_head") {
      t.head_bytes += double(m->weight_bytes());
      t.head_params += params;
    } else {
      t.layer_bytes += double(m->weight_bytes());
      t.layer_params += params;
    }
  });
  return t;
}

// One embedding row. DecoderModel::weight_bytes() is the embedding matrix + the layers' linears
// (+ an untied head), so the difference is the matrix as stored; if that does not come out as
// a whole number of 1/2/4-byte elements per row, fall back to the config's dtype.
double embedding_row_bytes(DecoderModel& model, const LinearTotals& t) {
  const auto& c = model.config();
  double embed = double(model.weight_bytes()) - t.layer_bytes - (c.tie_word_embeddings ? 0 : t.head_bytes);
  const double per_row = embed / double(c.vocab_size);
  for (double es : {1.0, 2.0, 4.0})
    if (per_row == es * double(c.hidden_size)) return per_row;
  return double(dtype_size(c.torch_dtype)) * double(c.hidden_size);
}

// Layers with KV: attention layers (Qwen3-Next's Gated DeltaNet layers keep a recurrent state).
double attention_layers(const ModelConfig& c) { return double(c.num_hidden_layers - c.num_linear_attention_layers()); }

// Recurrent state bytes a decoded token reads and writes: every GDN layer's conv window and
// state matrix, fp32, once each way.
double recurrent_bytes(const ModelConfig& c) {
  const auto& la = c.linear_attention;
  const double per_layer =
      4.0 * double((la.conv_kernel - 1) * (2 * la.num_key_heads * la.key_head_dim + la.num_value_heads * la.value_head_dim) +
                   la.num_value_heads * la.key_head_dim * la.value_head_dim);
  return 2.0 * per_layer * double(c.num_linear_attention_layers());
}

}  // namespace

double kv_bytes_per_element(const KvCache& cache, const DecoderModel& model) {
  const auto& c = model.config();
  const double layers = attention_layers(c) + (model.has_mtp() ? 1 : 0);
  const double elements = std::max(layers, 1.0) * double(cache.num_slots()) * 2.0 * double(cache.capacity()) *
                          double(c.num_key_value_heads) * double(c.head_dim);
  return elements > 0 ? double(cache.bytes()) / elements : 4.0;
}

DecodeBytes decode_bytes_per_token(DecoderModel& model, double kv_element_bytes, int64_t depth, int64_t n) {
  const auto& c = model.config();
  const LinearTotals t = linear_totals(model);
  DecodeBytes b;
  b.linear = t.layer_bytes;
  b.lm_head = t.head_bytes;
  b.embedding = embedding_row_bytes(model, t);
  // Step i (0-based) attends over depth + i + 1 positions; the mean over n steps:
  b.kv_context = double(depth) + double(n + 1) / 2.0;
  b.kv = 2.0 * attention_layers(c) * double(c.num_key_value_heads) * double(c.head_dim) * b.kv_context *
         kv_element_bytes;
  b.recurrent = recurrent_bytes(c);
  return b;
}

PrefillOps prefill_ops_per_token(DecoderModel& model, int64_t depth, int64_t p) {
  const auto& c = model.config();
  const LinearTotals t = linear_totals(model);
  PrefillOps o;
  o.linear = 2.0 * t.layer_params;
  // q·k and p·v: 2 multiply-adds (4 operations) per head_dim element per attended position.
  const double mean_context = double(depth) + double(p + 1) / 2.0;
  o.attention = 4.0 * attention_layers(c) * double(c.num_attention_heads) * double(c.head_dim) * mean_context;
  o.lm_head = p > 0 ? 2.0 * t.head_params / double(p) : 0.0;
  return o;
}

PeakKind scheme_peak(std::string_view scheme, const DecoderModel& model, const MachineLimits& limits) {
  enum class Math { Int8, Bf16, Fp32 } math = Math::Bf16;
  const RuntimeOptions& ro = runtime_options();
  const bool float_f32 = ro.float_activations == "f32";
  if (scheme == "none" || scheme == "bf16") {
    const auto& q = model.config().quantization_config;
    if (q.is_null()) {
      math = float_f32 ? Math::Fp32 : Math::Bf16;
    } else {
      math = q.dump().find("mxfp") != std::string::npos ? Math::Bf16 : Math::Int8;
    }
  } else if (scheme == "w8a8_int8" || scheme == "w4a8" || scheme == "w4a4") {
    math = Math::Int8;
  } else if (scheme == "w4a16") {
    const std::string w4 = w4a16_activation_math(ro, cpu_features().bf16());
    math = w4 == "int8" ? Math::Int8 : w4 == "bf16" ? Math::Bf16 : Math::Fp32;
  } else if (scheme == "mxfp4") {
    math = Math::Int8;  // E2M1 × E2M1: exact int8 dot products on 2·value (code_gemm_avx512)
  }  // other MX schemes: BF16 (E2M1/E4M3 codes widen exactly to BF16)
  // The fastest measured instruction that can do the scheme's math: a kernel may pick any of
  // them (on some CPUs vdpbf16ps issues at half the rate of FP32 FMAs, so a BF16 GEMM widened to
  // FP32 may be the faster one).
  auto fastest = [&](std::initializer_list<PeakKind> candidates) {
    PeakKind best = PeakKind::Fp32Fma;
    double best_ops = -1;
    for (PeakKind k : candidates) {
      const double ops = limits.peaks.size() > size_t(k) ? limits.peak(k).ops_per_s : 0.0;
      if (ops > best_ops) best = k, best_ops = ops;
    }
    return best;
  };
  switch (math) {
    case Math::Int8: return fastest({PeakKind::Int8Amx, PeakKind::Int8Vnni, PeakKind::Fp32Fma});
    case Math::Bf16: return fastest({PeakKind::Bf16Amx, PeakKind::Bf16Dot, PeakKind::Fp32Fma});
    case Math::Fp32: break;
  }
  return PeakKind::Fp32Fma;
}

}  // namespace lowbit
