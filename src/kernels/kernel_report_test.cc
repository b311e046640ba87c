// The start-up AMX self-test and the kernel report. On an AMX machine this is one more
// end-to-end check of the AMX GEMMs against the AVX-512 ones (it must pass: a failure would
// silently turn AMX off for users); elsewhere it must not run and must keep AMX off.
#include <gtest/gtest.h>

#include "core/cpu_features.h"
#include "kernels/amx_self_test.h"
#include "kernels/kernel_report.h"
#include "kernels/quant_gemm.h"

namespace lowbit {
namespace {

TEST(AmxSelfTest, RunsExactlyWhereAmxIsAvailable) {
  const AmxSelfTest& t = amx_self_test();
  if (cpu_features().max_isa() >= Isa::Amx) {
    EXPECT_TRUE(t.ran);
    EXPECT_TRUE(t.passed) << t.detail;
    EXPECT_STREQ(pick_quant_gemm(cpu_features()).name, "amx");
  } else {
    EXPECT_FALSE(t.ran);
    EXPECT_FALSE(amx_verified());
    EXPECT_STRNE(pick_quant_gemm(cpu_features()).name, "amx");
  }
}

TEST(KernelReport, NamesThePathInUse) {
  const std::string r = kernel_report();
  EXPECT_NE(r.find(isa_name(cpu_features().max_isa())), std::string::npos) << r;
  EXPECT_NE(r.find(std::string("quantized GEMMs: ") + pick_quant_gemm(cpu_features()).name), std::string::npos) << r;
  if (cpu_features().max_isa() < Isa::Amx) {
    EXPECT_NE(r.find("not used: amx"), std::string::npos) << r;
  }
}

}  // namespace
}  // namespace lowbit
