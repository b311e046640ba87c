// Fixed-size per-sequence state of recurrent layers, the second kind of per-sequence state
// beside paged KV (../shared/design/architecture.md): Qwen3-Next's Gated DeltaNet layers keep,
// per layer and sequence, a conv window [Kc−1, conv_dim] and a state matrix [Hv, dk, dv], fp32
// (kernels/gdn.h has the layouts). A slot holds one sequence's state for every recurrent layer
// and how many tokens it has absorbed: a recurrence cannot skip or revisit positions, so the
// decoder checks that each chunk continues exactly where its slot stands (or starts a fresh
// sequence at position 0, which zeroes the slot).
//
// Memory is an anonymous mapping committed as slots are first written, like the KV pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace lowbit {

class RecurrentStates {
 public:
  RecurrentStates() = default;  // a model without recurrent layers
  // With snapshots, every slot also keeps one saved copy per layer (speculative decoding's
  // rollback: the state after the first verified token).
  RecurrentStates(int64_t num_layers, int64_t num_slots, int64_t conv_floats, int64_t state_floats,
                  bool snapshots = false);

  bool empty() const { return num_layers_ == 0; }
  int64_t num_layers() const { return num_layers_; }
  int64_t num_slots() const { return num_slots_; }
  float* conv(int64_t layer, int64_t slot) { return base(layer, slot); }
  float* state(int64_t layer, int64_t slot) { return base(layer, slot) + conv_floats_; }
  // Tokens absorbed by the slot's state.
  int64_t length(int64_t slot) const { return lengths_[size_t(slot)]; }
  void set_length(int64_t slot, int64_t n) { lengths_[size_t(slot)] = n; }
  // Zeroes every layer's state of the slot: a fresh sequence.
  void reset(int64_t slot);
  // Copies every layer's state and the length from one slot to another.
  void copy(int64_t from, int64_t to);
  bool has_snapshots() const { return snapshots_; }
  // Saves one layer's current state of the slot into its snapshot.
  void save(int64_t layer, int64_t slot);
  // Puts every layer's snapshot back as the slot's state, which then holds `length` tokens.
  void rollback(int64_t slot, int64_t length);
  size_t bytes() const { return bytes_; }
  size_t bytes_per_slot() const { return num_slots_ ? bytes_ / size_t(num_slots_) : 0; }  // snapshot included

 private:
  size_t floats_per_slot() const { return size_t(num_layers_) * size_t(conv_floats_ + state_floats_); }
  float* base(int64_t layer, int64_t slot) {
    return data_.get() + size_t(slot) * floats_per_slot() + size_t(layer) * size_t(conv_floats_ + state_floats_);
  }
  // Snapshots sit after all slots.
  float* snapshot(int64_t layer, int64_t slot) { return base(layer, slot) + size_t(num_slots_) * floats_per_slot(); }
  struct Unmap {
    size_t bytes;
    void operator()(float* p) const;
  };
  int64_t num_layers_ = 0, num_slots_ = 0, conv_floats_ = 0, state_floats_ = 0;
  bool snapshots_ = false;
  size_t bytes_ = 0;
  std::unique_ptr<float, Unmap> data_{nullptr, Unmap{0}};
  std::unique_ptr<int64_t[]> lengths_;
};

}  // namespace lowbit
