#include "kernels/kernel_report.h"

#include <fmt/format.h>

#include "core/cpu_features.h"
#include "kernels/amx_self_test.h"
#include "kernels/attention.h"
#include "kernels/float_gemm.h"
#include "kernels/quant_gemm.h"

namespace lowbit {

std::string kernel_report() {
  const CpuFeatures& cpu = cpu_features();
  std::string s = cpu.report();
  const AmxSelfTest& amx = amx_self_test();
  if (amx.ran) s += fmt::format("\n  AMX self-test: {} ({})", amx.passed ? "passed" : "FAILED, AMX off", amx.detail);
  const auto bf16 = float_gemm_kernels(DType::BF16, FloatAct::BF16, cpu);
  s += fmt::format("\n  quantized GEMMs: {}; BF16 GEMM: {} (bf16 activations) / {} (f32); attention: {}",
                   pick_quant_gemm(cpu).name, bf16.empty() ? "-" : bf16.front()->name,
                   pick_float_gemm(DType::BF16, cpu).name, attention_kernels().name);
  return s;
}

}  // namespace lowbit
