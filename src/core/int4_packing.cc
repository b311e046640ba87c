#include "core/int4_packing.h"

#include <cstring>

#include "core/error.h"

namespace lowbit {

namespace {

// AutoAWQ: nibble slot i of a word holds column 8c + AWQ_ORDER[i] = [0,2,4,6,1,3,5,7][i], so
// column 8c + j sits in slot kAwqSlot[j] (AWQ_REVERSE_ORDER in awq/utils/packing_utils.py).
constexpr int kAwqSlot[8] = {0, 4, 1, 5, 2, 6, 3, 7};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Checkpoint data may be unaligned (safetensors only promises byte offsets).
uint32_t load_u32(const void* base, int64_t index) {
  uint32_t v;
  std::memcpy(&v, static_cast<const uint8_t*>(base) + index * 4, 4);
  return v;
}
uint8_t load_u8(const void* base, int64_t index) {
  return static_cast<const uint8_t*>(base)[index];
}
// Two's complement nibble → [-8, 7].
int8_t sign_extend4(uint32_t nib) { return int8_t(int(nib & 0xF) - ((nib & 0x8) ? 16 : 0)); }

const char* encoding_name(WeightEncoding enc) {
  switch (enc) {
    case WeightEncoding::Native:
      return "Native";
    case WeightEncoding::Int4InInt8:
      return "Int4InInt8";
    case WeightEncoding::Int4PackedRowPairs:
      return "Int4PackedRowPairs";
    case WeightEncoding::Int4PackedInt32K:
      return "Int4PackedInt32K";
    case WeightEncoding::Int4AwqGemm:
      return "Int4AwqGemm";
    case WeightEncoding::Fp4PackedK:
      return "Fp4PackedK";
  }
  return "?";
}

bool dtype_fits(WeightEncoding enc, DType t) {
  switch (enc) {
    case WeightEncoding::Int4InInt8:
      return t == DType::I8;
    case WeightEncoding::Int4PackedRowPairs:
    case WeightEncoding::Fp4PackedK:
      return t == DType::I8 || t == DType::U8;
    case WeightEncoding::Int4PackedInt32K:
    case WeightEncoding::Int4AwqGemm:
      return t == DType::I32;
    case WeightEncoding::Native:
      return false;
  }
  return false;
}

void check_range(int v, int lo, int hi, const char* what, int64_t index) {
  if (v < lo || v > hi)
    fail("{}: code {} at flat index {} is outside [{}, {}]", what, v, index, lo, hi);
}

}  // namespace

std::vector<int64_t> packed_int4_shape(WeightEncoding enc, int64_t n, int64_t k) {
  switch (enc) {
    case WeightEncoding::Int4InInt8:
      return {n, k};
    case WeightEncoding::Int4PackedRowPairs:
      return {ceil_div(n, 2), k};
    case WeightEncoding::Int4PackedInt32K:
      return {n, ceil_div(k, 8)};
    case WeightEncoding::Int4AwqGemm:
      if (n % 8 != 0) fail("AWQ GEMM packing needs out_features % 8 == 0, got {}", n);
      return {k, n / 8};
    case WeightEncoding::Fp4PackedK:
      return {n, ceil_div(k, 2)};
    case WeightEncoding::Native:
      break;
  }
  fail("weight encoding {} holds no packed 4-bit codes", encoding_name(enc));
}

void check_packed_int4(WeightEncoding enc, const TensorView& packed, int64_t n, int64_t k) {
  if (n <= 0 || k <= 0) fail("{}: bad logical weight shape [{}, {}]", packed.name, n, k);
  const std::vector<int64_t> want = packed_int4_shape(enc, n, k);
  if (!dtype_fits(enc, packed.dtype))
    fail("{}: dtype {} does not fit weight encoding {}", packed.name, dtype_name(packed.dtype),
         encoding_name(enc));
  if (packed.shape != want)
    fail("{}: shape {} but encoding {} of a [{}, {}] weight needs [{}, {}]", packed.name,
         packed.shape_str(), encoding_name(enc), n, k, want[0], want[1]);
  if (packed.data == nullptr) fail("{}: no data", packed.name);
}

void unpack_int4_row(WeightEncoding enc, const TensorView& packed, int64_t row, int64_t n,
                     int64_t k, int8_t* out) {
  LOWBIT_CHECK(row >= 0 && row < n, "row {} of {}", row, n);
  const void* d = packed.data;
  switch (enc) {
    case WeightEncoding::Int4InInt8:
      for (int64_t c = 0; c < k; ++c) {
        const int8_t v = int8_t(load_u8(d, row * k + c));
        if (v < -8 || v > 7)
          fail("{}: value {} at [{}, {}] is not int4 (expected [-8, 7])", packed.name, v, row, c);
        out[c] = v;
      }
      return;
    case WeightEncoding::Int4PackedRowPairs: {
      const int shift = (row & 1) ? 4 : 0;  // low nibble = even row
      const int64_t base = (row / 2) * k;
      for (int64_t c = 0; c < k; ++c)
        out[c] = sign_extend4(uint32_t(load_u8(d, base + c)) >> shift);
      return;
    }
    case WeightEncoding::Int4PackedInt32K: {
      const int64_t words = ceil_div(k, 8);
      for (int64_t c = 0; c < k; ++c) {
        const uint32_t w = load_u32(d, row * words + c / 8);
        out[c] = int8_t(int((w >> (4 * (c % 8))) & 0xF) - 8);
      }
      return;
    }
    case WeightEncoding::Int4AwqGemm: {
      // Row n of W is column n of AWQ's [K, N] matrix: one nibble per word, strided by N/8.
      const int64_t words = n / 8, col = row / 8, shift = 4 * kAwqSlot[row % 8];
      for (int64_t c = 0; c < k; ++c)
        out[c] = int8_t((load_u32(d, c * words + col) >> shift) & 0xF);
      return;
    }
    case WeightEncoding::Fp4PackedK: {
      const int64_t bytes = ceil_div(k, 2);
      for (int64_t c = 0; c < k; ++c) {
        const uint8_t b = load_u8(d, row * bytes + c / 2);
        out[c] = int8_t((c & 1) ? (b >> 4) : (b & 0xF));  // low nibble = even k
      }
      return;
    }
    case WeightEncoding::Native:
      break;
  }
  fail("{}: weight encoding {} holds no packed 4-bit codes", packed.name, encoding_name(enc));
}

void unpack_int4(WeightEncoding enc, const TensorView& packed, int64_t n, int64_t k, int8_t* out) {
  check_packed_int4(enc, packed, n, k);
  for (int64_t r = 0; r < n; ++r) unpack_int4_row(enc, packed, r, n, k, out + r * k);
}

std::vector<int8_t> pack_int4_row_pairs(const int8_t* codes, int64_t n, int64_t k) {
  std::vector<int8_t> out(size_t(ceil_div(n, 2) * k), 0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const int v = codes[r * k + c];
      check_range(v, -8, 7, "pack_int4_row_pairs", r * k + c);
      uint8_t& b = reinterpret_cast<uint8_t&>(out[size_t((r / 2) * k + c)]);
      b |= uint8_t((v & 0xF) << ((r & 1) ? 4 : 0));
    }
  return out;
}

std::vector<int32_t> pack_int4_int32_k(const int8_t* codes, int64_t n, int64_t k) {
  const int64_t words = ceil_div(k, 8);
  std::vector<uint32_t> out(size_t(n * words), 0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const int v = codes[r * k + c];
      check_range(v, -8, 7, "pack_int4_int32_k", r * k + c);
      out[size_t(r * words + c / 8)] |= uint32_t(v + 8) << (4 * (c % 8));
    }
  return std::vector<int32_t>(out.begin(), out.end());
}

std::vector<int32_t> pack_int4_awq_gemm(const uint8_t* codes, int64_t n, int64_t k) {
  if (n % 8 != 0) fail("AWQ GEMM packing needs out_features % 8 == 0, got {}", n);
  const int64_t words = n / 8;
  std::vector<uint32_t> out(size_t(k * words), 0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const int v = codes[r * k + c];
      check_range(v, 0, 15, "pack_int4_awq_gemm", r * k + c);
      out[size_t(c * words + r / 8)] |= uint32_t(v) << (4 * kAwqSlot[r % 8]);
    }
  return std::vector<int32_t>(out.begin(), out.end());
}

std::vector<uint8_t> pack_fp4_k(const uint8_t* codes, int64_t n, int64_t k) {
  const int64_t bytes = ceil_div(k, 2);
  std::vector<uint8_t> out(size_t(n * bytes), 0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const int v = codes[r * k + c];
      check_range(v, 0, 15, "pack_fp4_k", r * k + c);
      out[size_t(r * bytes + c / 2)] |= uint8_t(v << ((c & 1) ? 4 : 0));
    }
  return out;
}

std::vector<int32_t> pack_int4_zero_points_n(const int8_t* zp, int64_t n, int64_t g) {
  std::vector<uint32_t> out(size_t(ceil_div(n, 8) * g), 0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < g; ++j) {
      const int v = zp[r * g + j];
      check_range(v, -8, 7, "pack_int4_zero_points_n", r * g + j);
      out[size_t((r / 8) * g + j)] |= uint32_t(v + 8) << (4 * (r % 8));
    }
  return std::vector<int32_t>(out.begin(), out.end());
}

void unpack_int4_zero_points_n(const TensorView& packed, int64_t n, int64_t g, int8_t* out) {
  if (packed.dtype != DType::I32 || packed.shape != std::vector<int64_t>{ceil_div(n, 8), g})
    fail("{}: zero points of {} rows × {} groups need I32 [{}, {}], got {} {}", packed.name, n, g,
         ceil_div(n, 8), g, dtype_name(packed.dtype), packed.shape_str());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < g; ++j)
      out[r * g + j] =
          int8_t(int((load_u32(packed.data, (r / 8) * g + j) >> (4 * (r % 8))) & 0xF) - 8);
}

void unpack_awq_zeros(const TensorView& packed, int64_t n, int64_t g, uint8_t* out) {
  if (n % 8 != 0 || packed.dtype != DType::I32 || packed.shape != std::vector<int64_t>{g, n / 8})
    fail("{}: AWQ qzeros of {} columns × {} groups need I32 [{}, {}], got {} {}", packed.name, n, g,
         g, n / 8, dtype_name(packed.dtype), packed.shape_str());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < g; ++j)
      out[r * g + j] =
          uint8_t((load_u32(packed.data, j * (n / 8) + r / 8) >> (4 * kAwqSlot[r % 8])) & 0xF);
}

}  // namespace lowbit
