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
  // W4A16 activations: "float" keeps them fp32 through the table-decoded GEMM (exact);
  // "bf16" rounds them to BF16 first, which is what SGLang/vLLM's BF16 models feed their W4A16
  // kernels, and lets vdpbf16ps run (Zen4 Qwen3-1.7B shape: pp512 65 -> 99 t/s); "int8"
  // quantizes them per token (SGLang CPU's AWQ path, ggml's Q4×Q8) for VNNI/AMX integer dots.
  // "auto" (default) = bf16 when --float-activations resolves to bf16 (auto: the CPU has
  // AVX512-BF16), else float. On SmolLM2-135M (eval kld, 16k tokens of the repo's text): float
  // 0.5267 ± 0.0044, bf16 0.5266, int8 0.562 (± 0.005, not within noise, so never the default).
  std::string w4a16_activations = "auto";
  // KV cache element type: auto (the checkpoint's float dtype: bf16 for BF16/F16 models, f32
  // for F32 models), bf16, f32, fp8_e4m3.
  std::string kv_cache_dtype = "auto";
  // Quantize the lm_head too (W8A8 dynamic int8 for any quantized model) instead of keeping it
  // in the checkpoint's float type.
  bool quantize_lm_head = false;
  // Float weights (FLOAT scheme, BF16 lm_head) of 2 MiB or more: "copy" (default) moves them at
  // load into memory advised to transparent huge pages and releases the checkpoint's pages;
  // "mapped" reads them in place from the checkpoint's mapping (4 KiB pages; what lowbit
  // quantize uses, so its float models share the Checkpoint's pages). Decode streams every
  // weight byte per token, and small pages cost a TLB miss per 4 KiB: on the Zen4 guest the
  // 1.7B shape's BF16 decode went 8.4 -> 9.4 t/s (median of 6 alternations, every one faster);
  // W4A8's, half of whose bytes are the BF16 lm_head, moved within the machine's noise.
  std::string float_weights = "copy";
};

// The process-wide options. Environment overrides are applied the first time this is called:
// LOWBIT_FLOAT_ACTIVATIONS, LOWBIT_W4A16_ACTIVATIONS, LOWBIT_KV_CACHE_DTYPE,
// LOWBIT_QUANTIZE_LM_HEAD=1, LOWBIT_FLOAT_WEIGHTS. An invalid value throws Error naming the variable.
RuntimeOptions& runtime_options();

// W4A16's activation math after "auto" on a CPU with (cpu_bf16) or without AVX512-BF16:
// "int8", "bf16" or "float".
std::string w4a16_activation_math(const RuntimeOptions& o, bool cpu_bf16);

}  // namespace lowbit
