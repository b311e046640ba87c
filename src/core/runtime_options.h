// Numeric policies a user may choose at start-up that change which kernels run and how exact
// they are (SGLang's --kv-cache-dtype, lowbit's --float-activations ...). Set once by the
// command line before a model loads, read by schemes and the decoder at load; each field also
// has an environment override (LOWBIT_<NAME>) so tests and benchmarks can pin it.
#pragma once

#include <string>

namespace lowbit {

struct RuntimeOptions {
  // Activations fed to BF16/F16 weights: "bf16" rounds them to BF16 once per row so AMX-BF16 /
  // vdpbf16ps run (what transformers, llama.cpp and SGLang do in BF16); "f32" keeps fp32
  // activations × widened weights (bit-for-bit the fp32 oracle's math). "auto" = bf16 when the
  // CPU has AVX512-BF16, else f32.
  std::string float_activations = "auto";
  // W4A16: "int8" quantizes activations per token to int8 (SGLang CPU's AWQ path, ggml's
  // Q4×Q8) so VNNI/AMX integer dot products run; "float" keeps 16-bit-exact activations
  // through the table-decoded GEMM. Default float: on SmolLM2-135M (eval kld, 16k tokens of
  // the repo's text) int8 activations cost KLD 0.562 vs 0.527 (± 0.005), not within noise.
  std::string w4a16_activations = "float";
  // KV cache element type: auto (the checkpoint's float dtype: bf16 for BF16/F16 models, f32
  // for F32 models), bf16, f32, fp8_e4m3.
  std::string kv_cache_dtype = "auto";
  // Quantize the lm_head too (W8A8 dynamic int8 for any quantized model) instead of keeping it
  // in the checkpoint's float type.
  bool quantize_lm_head = false;
};

// The process-wide options. Environment overrides are applied the first time this is called:
// LOWBIT_FLOAT_ACTIVATIONS, LOWBIT_W4A16_ACTIVATIONS, LOWBIT_KV_CACHE_DTYPE,
// LOWBIT_QUANTIZE_LM_HEAD=1. An invalid value throws Error naming the variable.
RuntimeOptions& runtime_options();

}  // namespace lowbit
