#include "models/recurrent_state.h"

#include <sys/mman.h>

#include <cstring>

#include "core/error.h"

namespace lowbit {

void RecurrentStates::Unmap::operator()(float* p) const {
  if (p) munmap(p, bytes);
}

RecurrentStates::RecurrentStates(int64_t num_layers, int64_t num_slots, int64_t conv_floats, int64_t state_floats,
                                 bool snapshots)
    : num_layers_(num_layers),
      num_slots_(num_slots),
      conv_floats_(conv_floats),
      state_floats_(state_floats),
      snapshots_(snapshots) {
  if (num_layers <= 0) return;
  if (num_slots <= 0) fail("a recurrent model needs at least one state slot");
  bytes_ = size_t(num_slots) * floats_per_slot() * sizeof(float) * (snapshots ? 2 : 1);
  void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) fail("cannot allocate recurrent state of {} MiB ({} slots)", bytes_ >> 20, num_slots);
  data_ = std::unique_ptr<float, Unmap>(static_cast<float*>(p), Unmap{bytes_});
  lengths_ = std::make_unique<int64_t[]>(size_t(num_slots));
}

void RecurrentStates::reset(int64_t slot) {
  std::memset(base(0, slot), 0, floats_per_slot() * sizeof(float));
  lengths_[size_t(slot)] = 0;
}

void RecurrentStates::copy(int64_t from, int64_t to) {
  if (from == to) return;
  std::memcpy(base(0, to), base(0, from), floats_per_slot() * sizeof(float));
  lengths_[size_t(to)] = lengths_[size_t(from)];
}

void RecurrentStates::save(int64_t layer, int64_t slot) {
  if (!snapshots_) fail("recurrent state: no snapshots in this cache");
  std::memcpy(snapshot(layer, slot), base(layer, slot), size_t(conv_floats_ + state_floats_) * sizeof(float));
}

void RecurrentStates::rollback(int64_t slot, int64_t length) {
  if (!snapshots_) fail("recurrent state: no snapshots in this cache");
  std::memcpy(base(0, slot), snapshot(0, slot), floats_per_slot() * sizeof(float));
  lengths_[size_t(slot)] = length;
}

}  // namespace lowbit
