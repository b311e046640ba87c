// RecurrentStates: slots are independent, reset zeroes one slot, save/rollback restore exactly
// the saved layer states and set the length, and a cache without snapshots refuses rollback.
#include "models/recurrent_state.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace lowbit {
namespace {

void fill(RecurrentStates& s, int64_t slot, float base) {
  for (int64_t l = 0; l < s.num_layers(); ++l) {
    for (int i = 0; i < 3; ++i) s.conv(l, slot)[i] = base + float(l) + 0.25f * float(i);
    for (int i = 0; i < 5; ++i) s.state(l, slot)[i] = -base - float(l) - 0.5f * float(i);
  }
}

TEST(RecurrentStates, SlotsResetSaveRollback) {
  RecurrentStates s(2, 3, 3, 5, /*snapshots=*/true);
  EXPECT_TRUE(s.has_snapshots());
  for (int64_t slot = 0; slot < 3; ++slot) {
    fill(s, slot, float(10 * slot));
    s.set_length(slot, slot + 7);
  }
  s.reset(1);
  EXPECT_EQ(s.length(1), 0);
  for (int64_t l = 0; l < 2; ++l) {
    EXPECT_EQ(s.conv(l, 1)[2], 0.0f);
    EXPECT_EQ(s.state(l, 1)[4], 0.0f);
    EXPECT_EQ(s.conv(l, 2)[0], 20.0f + float(l));  // neighbours untouched
    EXPECT_EQ(s.state(l, 0)[1], -float(l) - 0.5f);
  }
  for (int64_t l = 0; l < 2; ++l) s.save(l, 2);
  fill(s, 2, 99.0f);
  s.rollback(2, 5);
  EXPECT_EQ(s.length(2), 5);
  for (int64_t l = 0; l < 2; ++l) {
    EXPECT_EQ(s.conv(l, 2)[1], 20.0f + float(l) + 0.25f);
    EXPECT_EQ(s.state(l, 2)[3], -20.0f - float(l) - 1.5f);
  }
  s.copy(0, 1);
  EXPECT_EQ(s.length(1), 7);
  EXPECT_EQ(s.state(1, 1)[2], s.state(1, 0)[2]);
}

TEST(RecurrentStates, NoSnapshotsNoRollback) {
  RecurrentStates s(1, 1, 2, 2);
  EXPECT_FALSE(s.has_snapshots());
  EXPECT_THROW(s.save(0, 0), Error);
  EXPECT_THROW(s.rollback(0, 0), Error);
  EXPECT_TRUE(RecurrentStates().empty());
}

}  // namespace
}  // namespace lowbit
