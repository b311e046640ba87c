#include "core/runtime_options.h"

#include <gtest/gtest.h>

namespace lowbit {

// W4A16's "auto" follows --float-activations: BF16 where that resolves to bf16 (auto: the CPU
// has AVX512-BF16), else exact fp32; explicit choices pass through whatever the CPU.
TEST(RuntimeOptions, W4A16AutoFollowsFloatActivations) {
  RuntimeOptions o;
  EXPECT_EQ(o.w4a16_activations, "auto");
  EXPECT_EQ(w4a16_activation_math(o, true), "bf16");
  EXPECT_EQ(w4a16_activation_math(o, false), "float");
  o.float_activations = "f32";
  EXPECT_EQ(w4a16_activation_math(o, true), "float");
  o.float_activations = "bf16";
  EXPECT_EQ(w4a16_activation_math(o, false), "bf16");
  for (const char* explicit_choice : {"float", "bf16", "int8"}) {
    o.w4a16_activations = explicit_choice;
    EXPECT_EQ(w4a16_activation_math(o, true), explicit_choice);
    EXPECT_EQ(w4a16_activation_math(o, false), explicit_choice);
  }
}

}  // namespace lowbit
