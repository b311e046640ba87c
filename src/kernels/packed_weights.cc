#include "kernels/packed_weights.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"

namespace lowbit {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
}  // namespace

// Arrays of a huge page or more (packed weights) start on a 2 MiB boundary and are advised to
// transparent huge pages before they are first touched (THP in "madvise" mode, as on our
// machines, gives none otherwise). Decode streams every weight byte once per token, and in 4 KiB
// pages each 4 KiB costs a TLB miss: on the Zen4 guest a 2-thread read of 1 GiB measured
// 23-36 GB/s in small pages against 29-41 GB/s in huge pages (8 alternated pairs), and W8A8
// decode of the 1.7B shape 13.5 -> 14.4 t/s median (6 alternations; W4A8, half of whose bytes
// are the BF16 lm_head mapped from the file, within noise). Only addresses move: the size is not
// rounded up, the tail short of 2 MiB stays in small pages, so resident memory is unchanged.
// Where THP is off the advice is ignored.
template <class T>
AlignedArray<T>::AlignedArray(size_t count) : size_(count) {
  const size_t bytes = round_up(int64_t(std::max<size_t>(count * sizeof(T), 1)), 64);
  const bool huge = bytes >= kHugePage;
  void* p = nullptr;
  if (posix_memalign(&p, huge ? kHugePage : 64, bytes) != 0 || !p) throw std::bad_alloc();
  if (huge) madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);
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
