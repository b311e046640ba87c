// Kernel choice by CPU feature: one table per op, fastest first, reference last. Chosen
// once per layer at load (or once per process for vec ops), never per call.
#include <atomic>
#include <vector>

#include "core/error.h"
#include "kernels/amx_self_test.h"
#include "kernels/attention.h"
#include "kernels/float_gemm.h"
#include "kernels/cpu/code_gemm_avx512.h"
#include "kernels/cpu/int_gemm_amx.h"
#include "kernels/cpu/int_gemm_vnni.h"
#include "kernels/quant_gemm.h"
#include "kernels/quantize_rows.h"
#include "kernels/vec_ops.h"

namespace lowbit {

namespace {
constexpr FloatGemmKernel kFloatGemm[] = {
    {"gemm_bf16_f32_avx512", Isa::Avx512, DType::BF16, gemm_bf16_f32_avx512},
    {"gemm_f16_f32_avx512", Isa::Avx512, DType::F16, gemm_f16_f32_avx512},
    {"gemm_f32_f32_avx512", Isa::Avx512, DType::F32, gemm_f32_f32_avx512},
    {"gemm_bf16_f32_avx2", Isa::Avx2, DType::BF16, gemm_bf16_f32_avx2},
    {"gemm_f16_f32_avx2", Isa::Avx2, DType::F16, gemm_f16_f32_avx2},
    {"gemm_f32_f32_avx2", Isa::Avx2, DType::F32, gemm_f32_f32_avx2},
    {"gemm_bf16_f32_ref", Isa::Scalar, DType::BF16, gemm_bf16_f32_ref},
    {"gemm_f16_f32_ref", Isa::Scalar, DType::F16, gemm_f16_f32_ref},
    {"gemm_f32_f32_ref", Isa::Scalar, DType::F32, gemm_f32_f32_ref},
    // BF16 weights × BF16-rounded activations (runtime_options().float_activations).
    {"gemm_bf16_bf16_amx", Isa::Amx, DType::BF16, gemm_bf16_bf16_amx, FloatAct::BF16,
     [](const CpuFeatures& c) { return c.amx_bf16 && c.bf16() && amx_verified(); }},
    {"gemm_bf16_bf16_avx512bf16", Isa::Avx512, DType::BF16, gemm_bf16_bf16_avx512bf16, FloatAct::BF16,
     [](const CpuFeatures& c) { return c.bf16(); }},
    {"gemm_bf16_bf16_avx512", Isa::Avx512, DType::BF16, gemm_bf16_bf16_avx512, FloatAct::BF16},
    {"gemm_bf16_bf16_avx2", Isa::Avx2, DType::BF16, gemm_bf16_bf16_avx2, FloatAct::BF16},
    {"gemm_bf16_bf16_ref", Isa::Scalar, DType::BF16, gemm_bf16_bf16_ref, FloatAct::BF16},
};
}  // namespace

std::vector<const FloatGemmKernel*> float_gemm_kernels(DType wtype, FloatAct act, const CpuFeatures& cpu) {
  std::vector<const FloatGemmKernel*> out;
  for (const auto& k : kFloatGemm)
    if (k.wtype == wtype && k.act == act && int(k.isa) <= int(cpu.max_isa()) && (!k.usable || k.usable(cpu)))
      out.push_back(&k);
  return out;
}

const FloatGemmKernel& pick_float_gemm(DType wtype, FloatAct act, const CpuFeatures& cpu) {
  auto all = float_gemm_kernels(wtype, act, cpu);
  if (all.empty())
    fail("no float GEMM kernel for {} weights with {} activations", dtype_name(wtype), float_act_name(act));
  return *all.front();
}

namespace {
// The table-decoded GEMM (code_gemm_avx512.cc) in full also needs AVX512-BF16 and VBMI
// (vpermi2b): every CPU with AMX, and Zen4, has them; Ice Lake (VBMI, no BF16) takes its fp32
// form, Cascade Lake (VNNI only) the tiled code GEMMs below.
bool vnni_bf16_vbmi(const CpuFeatures& c) { return c.vnni() && c.bf16() && c.avx512_vbmi; }
bool amx_usable(const CpuFeatures& c) { return vnni_bf16_vbmi(c) && amx_verified(); }
void tiled_code_gemm(const CodeGemmArgs& a, int64_t t0, int64_t t1) { kQuantGemmAvx512.code_gemm(a, t0, t1); }
}  // namespace

// AMX tiles from large_rows rows on, VNNI below (int_gemm_amx_test's QuickTiming prints the
// crossover).
const QuantGemmKernels kQuantGemmAmx = {"amx", Isa::Amx, amx_usable, int_gemm_vnni, code_gemm_avx512,
                                        int_gemm_amx, nullptr, 16};

// AVX-512 VNNI integer GEMM for every m (decode GEMV and blocked prefill), BF16/VNNI
// table-decoded GEMM.
const QuantGemmKernels kQuantGemmVnni = {"vnni", Isa::Avx512, vnni_bf16_vbmi, int_gemm_vnni, code_gemm_avx512};

namespace {
// VNNI and VBMI without AVX512-BF16 (Ice Lake; Xeon guests that hide BF16): the table-decoded
// GEMM in fp32 FMAs.
const QuantGemmKernels kQuantGemmVnniF32 = {"vnni_f32_codes", Isa::Avx512,
                                            [](const CpuFeatures& c) { return c.vnni() && c.avx512_vbmi; },
                                            int_gemm_vnni, code_gemm_avx512_f32};
// VNNI without VBMI (Cascade Lake): VNNI integers, tiled code GEMMs.
const QuantGemmKernels kQuantGemmVnniOnly = {"vnni_tiled_codes", Isa::Avx512,
                                             [](const CpuFeatures& c) { return c.vnni(); }, int_gemm_vnni,
                                             tiled_code_gemm};
}  // namespace

std::vector<const QuantGemmKernels*> quant_gemm_kernels(const CpuFeatures& cpu) {
  std::vector<const QuantGemmKernels*> out;
  for (const QuantGemmKernels* k :
       {&kQuantGemmAmx, &kQuantGemmVnni, &kQuantGemmVnniF32, &kQuantGemmVnniOnly, &kQuantGemmAvx512,
        &kQuantGemmPortable})
    if (int(k->isa) <= int(cpu.max_isa()) && (!k->usable || k->usable(cpu))) out.push_back(k);
  return out;
}

const QuantGemmKernels& pick_quant_gemm(const CpuFeatures& cpu) { return *quant_gemm_kernels(cpu).front(); }

uint64_t next_code_gemm_call_id() {
  static std::atomic<uint64_t> last{0};
  return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

const VecOps& vec_ops() {
  static const VecOps& ops = [] () -> const VecOps& {
    switch (cpu_features().max_isa()) {
      case Isa::Amx:
      case Isa::Avx512: return kVecOpsAvx512;
      case Isa::Avx2: return kVecOpsAvx2;
      case Isa::Scalar: break;
    }
    return kVecOpsRef;
  }();
  return ops;
}

std::vector<const ActQuantKernels*> act_quant_kernel_list(const CpuFeatures& cpu) {
  std::vector<const ActQuantKernels*> out;
  for (const ActQuantKernels* k : {&kActQuantAvx512, &kActQuantPortable})
    if (int(k->isa) <= int(cpu.max_isa())) out.push_back(k);
  return out;
}

const ActQuantKernels& act_quant_kernels() {
  static const ActQuantKernels& k = *act_quant_kernel_list(cpu_features()).front();
  return k;
}

std::vector<const AttentionKernels*> attention_kernel_sets(const CpuFeatures& cpu) {
  std::vector<const AttentionKernels*> out;
  for (const AttentionKernels* k : {&kAttentionAvx512, &kAttentionAvx2, &kAttentionPortable})
    if (int(k->isa) <= int(cpu.max_isa()) && (!k->usable || k->usable(cpu))) out.push_back(k);
  return out;
}

const AttentionKernels& attention_kernels() {
  static const AttentionKernels& k = *attention_kernel_sets(cpu_features()).front();
  return k;
}

}  // namespace lowbit
