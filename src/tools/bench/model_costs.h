// What one token costs a model, for rooflines: bytes read per decoded token (the memory
// roofline) and operations per prefill token (the compute roofline), and which measured peak a
// scheme's GEMMs run against. Counted from the loaded model itself (LinearMethod::weight_bytes,
// in/out features), so a new scheme or layout is counted without changes here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kernels/roofline.h"

namespace lowbit {

class DecoderModel;
class KvCache;
struct CpuFeatures;

struct DecodeBytes {
  double linear = 0;     // every decoder-layer linear's weight_bytes(); MoE: router + top_k experts
  double lm_head = 0;    // the head's weight_bytes() (BF16 unless quantized)
  double embedding = 0;  // one embedding row
  double kv = 0;         // K and V of every attention layer over the mean context of the timed steps
  double kv_context = 0;
  double recurrent = 0;  // Gated DeltaNet state (conv window + matrix, fp32) read and written
  double total() const { return linear + lm_head + embedding + kv + recurrent; }
};

struct PrefillOps {
  double linear = 0;     // 2 · Σ in·out over decoder-layer linears, per token
  double attention = 0;  // 4 · layers · heads · head_dim · mean causal context, per token
  double lm_head = 0;    // 2 · hidden · vocab once per prompt (only the last token's logits), per token
  double total() const { return linear + attention + lm_head; }
};

// Bytes per K or V element in `cache`, from its size (so a BF16 or FP8 cache is counted as it is).
double kv_bytes_per_element(const KvCache& cache, const DecoderModel& model);

// Decoding n tokens after `depth` cached ones: step i attends over depth + i + 1 positions.
DecodeBytes decode_bytes_per_token(DecoderModel& model, double kv_element_bytes, int64_t depth, int64_t n);
// Prefill of p tokens after `depth` cached ones (token i attends over depth + i + 1 positions).
PrefillOps prefill_ops_per_token(DecoderModel& model, int64_t depth, int64_t p);

// The peak a scheme's GEMMs can at best reach on this CPU: the fastest measured of AMX-INT8,
// VNNI and FP32 FMA for integer schemes (w8a8_int8, w4a8, w4a4, w4a16 with int8 activations,
// pre-quantized integer checkpoints); of AMX-BF16, AVX512-BF16 and FP32 FMA for float (BF16
// activations) and MX schemes; FP32 FMA for float with --float-activations f32. "none"/"bf16"
// mean the checkpoint as stored.
PeakKind scheme_peak(std::string_view scheme, const DecoderModel& model, const MachineLimits& limits);

}  // namespace lowbit
