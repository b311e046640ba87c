// The layout quantized weights live in after load: the CPU counterpart of Ascend's NZ
// layout. Every scheme repacks its checkpoint tensors into this once, at load, and every
// kernel (the portable one here, the VNNI/AMX ones to come) reads only this.
//
// Output rows are grouped in tiles of 16 (one 512-bit register of fp32/int32 lanes); inside
// a tile, K advances in steps that fill one 64-byte line across the 16 lanes:
//   8-bit codes: byte ((t·K_pad/4 + k/4)·16 + lane)·4 + k%4            (VNNI's 4 k per lane)
//   4-bit codes: byte ((t·K_pad/8 + k/8)·16 + lane)·4 + k%4, low nibble for k%8 < 4, high
//                nibble for k%8 ≥ 4: masking (& 0xF) yields k 0..3 and a shift yields k 4..7
//                in the same 8-bit layout, so an int4 kernel is an int8 kernel plus one shift.
// with t = n/16, lane = n%16. N is padded to a multiple of 16 and K to a multiple of 4 (8-bit)
// or 8 (4-bit) with code 0. Per-(row, group) parameters (scales, zero points) are tiled the
// same way: float [(t·groups + g)·16 + lane], so 16 lanes' values are one aligned load.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

namespace lowbit {

inline constexpr int64_t kTileN = 16;

// 64-byte aligned, zero-initialised storage that is never resized (no per-call allocation).
template <class T>
class AlignedArray {
 public:
  AlignedArray() = default;
  explicit AlignedArray(size_t count);
  T* data() { return ptr_.get(); }
  const T* data() const { return ptr_.get(); }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }
  T& operator[](size_t i) { return ptr_[i]; }
  const T& operator[](size_t i) const { return ptr_[i]; }

 private:
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };
  std::unique_ptr<T[], Free> ptr_;
  size_t size_ = 0;
};

inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

class PackedCodes {
 public:
  PackedCodes() = default;
  // Zero codes for [n, k] at `bits` (8 or 4). Fill with set_row.
  PackedCodes(int bits, int64_t n, int64_t k);

  int bits() const { return bits_; }
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  int64_t n_pad() const { return n_pad_; }
  int64_t k_pad() const { return k_pad_; }
  int64_t k_step() const { return bits_ == 8 ? 4 : 8; }  // K per 4-byte lane cell
  size_t bytes() const { return data_.bytes(); }
  const uint8_t* tile(int64_t t) const { return data_.data() + size_t(t) * size_t(kTileN * k_pad_ * bits_ / 8); }

  // Row n's K codes, one per byte (low `bits` bits used; the rest must be zero for 4-bit).
  void set_row(int64_t n, const uint8_t* codes);

 private:
  size_t byte_index(int64_t n, int64_t k) const;
  int bits_ = 8;
  int64_t n_ = 0, k_ = 0, n_pad_ = 0, k_pad_ = 0;
  AlignedArray<uint8_t> data_;
};

// Per-(row, group) floats in tile order, [(n/16 · groups + g) · 16 + n%16]; padding rows 0.
class TiledParams {
 public:
  TiledParams() = default;
  TiledParams(int64_t n, int64_t groups);
  // From a row-major [n, groups] matrix.
  TiledParams(const float* values, int64_t n, int64_t groups);
  int64_t groups() const { return groups_; }
  bool empty() const { return groups_ == 0; }
  size_t bytes() const { return data_.bytes(); }
  void set(int64_t n, int64_t g, float v) { data_[index(n, g)] = v; }
  // The 16 lanes of tile t, group g.
  const float* lanes(int64_t t, int64_t g) const { return data_.data() + size_t((t * groups_ + g) * kTileN); }

 private:
  size_t index(int64_t n, int64_t g) const { return size_t(((n / kTileN) * groups_ + g) * kTileN + n % kTileN); }
  int64_t groups_ = 0;
  AlignedArray<float> data_;
};

// A per-row vector padded to whole tiles (biases, per-channel scales), zeros in the padding.
AlignedArray<float> padded_row_vector(int64_t n);

}  // namespace lowbit
