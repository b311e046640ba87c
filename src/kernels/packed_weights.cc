#include "kernels/packed_weights.h"

#include <cstring>
#include <new>

#include "core/error.h"

namespace lowbit {

template <class T>
AlignedArray<T>::AlignedArray(size_t count) : size_(count) {
  const size_t bytes = round_up(int64_t(std::max<size_t>(count * sizeof(T), 1)), 64);
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  ptr_.reset(static_cast<T*>(p));
}
template class AlignedArray<uint8_t>;
template class AlignedArray<int8_t>;
template class AlignedArray<int32_t>;
template class AlignedArray<float>;

PackedCodes::PackedCodes(int bits, int64_t n, int64_t k)
    : bits_(bits), n_(n), k_(k), n_pad_(round_up(n, kTileN)), k_pad_(round_up(k, bits == 8 ? 4 : 8)) {
  if (bits != 8 && bits != 4) fail("PackedCodes: {} bits is not supported (8 or 4)", bits);
  if (n <= 0 || k <= 0) fail("PackedCodes: empty matrix [{}, {}]", n, k);
  data_ = AlignedArray<uint8_t>(size_t(n_pad_ * k_pad_ * bits / 8));
}

size_t PackedCodes::byte_index(int64_t n, int64_t k) const {
  const int64_t t = n / kTileN, lane = n % kTileN, step = k_step();
  return size_t(((t * (k_pad_ / step) + k / step) * kTileN + lane) * 4 + k % 4);
}

void PackedCodes::set_row(int64_t n, const uint8_t* codes) {
  // Row n's cells: one 4-byte cell per k_step() codes, 64 bytes (16 lanes) apart.
  uint8_t* cell = data_.data() + byte_index(n, 0);
  if (bits_ == 8) {
    for (int64_t k = 0; k < k_; k += 4, cell += kTileN * 4)
      for (int64_t i = 0; i < 4 && k + i < k_; ++i) cell[i] = codes[k + i];
    return;
  }
  for (int64_t k = 0; k < k_; k += 8, cell += kTileN * 4)
    for (int64_t i = 0; i < 4; ++i) {
      const uint8_t lo = k + i < k_ ? codes[k + i] & 0xF : 0, hi = k + 4 + i < k_ ? codes[k + 4 + i] & 0xF : 0;
      cell[i] = uint8_t(lo | hi << 4);
    }
}

TiledParams::TiledParams(int64_t n, int64_t groups)
    : groups_(groups), data_(size_t(round_up(n, kTileN) * groups)) {}

TiledParams::TiledParams(const float* values, int64_t n, int64_t groups) : TiledParams(n, groups) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < groups; ++g) set(r, g, values[r * groups + g]);
}

AlignedArray<float> padded_row_vector(int64_t n) { return AlignedArray<float>(size_t(round_up(n, kTileN))); }

}  // namespace lowbit
