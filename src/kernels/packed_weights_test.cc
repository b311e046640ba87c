// AlignedArray's placement: every array 64-byte aligned and zeroed; arrays of 2 MiB or more
// (packed weights) start on a 2 MiB boundary, so transparent huge pages can back them.
#include "kernels/packed_weights.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace lowbit {
namespace {

constexpr uintptr_t kHugePage = uintptr_t(2) << 20;

TEST(AlignedArray, LargeArraysStartOnAHugePage) {
  for (size_t bytes : {size_t(2) << 20, (size_t(5) << 20) + 4096 + 64}) {
    const AlignedArray<uint8_t> a(bytes);
    ASSERT_EQ(a.size(), bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % kHugePage, 0u) << bytes << " bytes";
    for (size_t i = 0; i < bytes; i += 4093) ASSERT_EQ(a[i], 0) << "byte " << i;
    EXPECT_EQ(a[bytes - 1], 0);
  }
}

TEST(AlignedArray, SmallArraysAre64ByteAlignedAndZeroed) {
  for (size_t count : {size_t(0), size_t(1), size_t(100), size_t(1) << 18}) {
    const AlignedArray<float> a(count);
    ASSERT_EQ(a.size(), count);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % 64, 0u) << count << " floats";
    for (size_t i = 0; i < count; ++i) ASSERT_EQ(a[i], 0.0f);
  }
}

}  // namespace
}  // namespace lowbit
