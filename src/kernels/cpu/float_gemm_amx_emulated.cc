// Test-only build of float_gemm_amx.cc with the tile instructions emulated in C++
// (amx_bf16_emulation.h), as gemm_bf16_bf16_amx_emulated: float_gemm_bf16_test runs it on
// every AVX512-BF16 host, so the AMX kernel's own logic is tested where AMX is absent.
#define LOWBIT_AMX_EMULATE 1
#define gemm_bf16_bf16_amx gemm_bf16_bf16_amx_emulated
#include "kernels/cpu/float_gemm_amx.cc"  // NOLINT(bugprone-suspicious-include)
