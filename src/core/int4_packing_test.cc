#include "core/int4_packing.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "core/error.h"

namespace lowbit {
namespace {

std::vector<int8_t> random_codes(int64_t count, int lo, int hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<int8_t> v(static_cast<size_t>(count));
  for (auto& x : v) x = int8_t(d(rng));
  return v;
}

template <class T>
TensorView view(const std::vector<T>& data, DType t, std::vector<int64_t> shape) {
  return TensorView{"test.weight", t, std::move(shape), data.data()};
}

void expect_round_trip(WeightEncoding enc, const TensorView& packed, int64_t n, int64_t k,
                       const std::vector<int8_t>& codes) {
  std::vector<int8_t> out(size_t(n * k), 99);
  unpack_int4(enc, packed, n, k, out.data());
  EXPECT_EQ(out, codes);
}

TEST(Int4Packing, RowPairsOddN) {
  for (auto [n, k] : {std::pair<int64_t, int64_t>{6, 5}, {7, 3}, {1, 1}}) {
    auto codes = random_codes(n * k, -8, 7, 1);
    auto packed = pack_int4_row_pairs(codes.data(), n, k);
    ASSERT_EQ(int64_t(packed.size()), (n + 1) / 2 * k);
    expect_round_trip(WeightEncoding::Int4PackedRowPairs, view(packed, DType::I8, {(n + 1) / 2, k}),
                      n, k, codes);
  }
  // Layout: byte [j, c] = low nibble row 2j, high nibble row 2j+1, two's complement.
  const int8_t codes[] = {-1, 2, 3, -8};  // rows 0,1 × k=2
  auto p = pack_int4_row_pairs(codes, 2, 2);
  EXPECT_EQ(uint8_t(p[0]), 0x3F);
  EXPECT_EQ(uint8_t(p[1]), 0x82);
}

TEST(Int4Packing, Int32KWithRaggedK) {
  for (auto [n, k] : {std::pair<int64_t, int64_t>{3, 8}, {5, 13}, {2, 1}, {4, 64}}) {
    auto codes = random_codes(n * k, -8, 7, 2);
    auto packed = pack_int4_int32_k(codes.data(), n, k);
    expect_round_trip(WeightEncoding::Int4PackedInt32K, view(packed, DType::I32, {n, (k + 7) / 8}),
                      n, k, codes);
  }
  const int8_t one[] = {-8, 7, 0};  // stored +8: nibbles 0, 15, 8
  EXPECT_EQ(pack_int4_int32_k(one, 1, 3)[0], 0x8F0);
}

TEST(Int4Packing, UnalignedInt32Data) {
  // safetensors only promises byte offsets: int32 words may start at any address.
  const int64_t n = 3, k = 11;
  auto codes = random_codes(n * k, -8, 7, 7);
  auto packed = pack_int4_int32_k(codes.data(), n, k);
  std::vector<uint8_t> bytes(packed.size() * 4 + 1);
  std::memcpy(bytes.data() + 1, packed.data(), packed.size() * 4);
  TensorView v{"test.weight_packed", DType::I32, {n, 2}, bytes.data() + 1};
  std::vector<int8_t> out(size_t(n * k));
  unpack_int4(WeightEncoding::Int4PackedInt32K, v, n, k, out.data());
  EXPECT_EQ(out, codes);
}

TEST(Int4Packing, AwqNibbleOrder) {
  // Column j of a word sits in nibble slot [0,4,1,5,2,6,3,7][j].
  std::vector<uint8_t> codes(8);
  for (int j = 0; j < 8; ++j) codes[size_t(j)] = uint8_t(j + 1);  // N = 8, K = 1
  auto packed = pack_int4_awq_gemm(codes.data(), 8, 1);
  ASSERT_EQ(packed.size(), 1u);
  EXPECT_EQ(uint32_t(packed[0]), 0x86427531u);  // slot i holds column [0,2,4,6,1,3,5,7][i]
  for (auto [n, k] : {std::pair<int64_t, int64_t>{16, 3}, {8, 7}, {24, 1}}) {
    auto s = random_codes(n * k, 0, 15, 3);
    std::vector<uint8_t> u(s.begin(), s.end());
    auto p = pack_int4_awq_gemm(u.data(), n, k);
    expect_round_trip(WeightEncoding::Int4AwqGemm, view(p, DType::I32, {k, n / 8}), n, k, s);
    std::vector<uint8_t> z(size_t(n * k));
    unpack_awq_zeros(view(p, DType::I32, {k, n / 8}), n, k, z.data());
    EXPECT_EQ(z, u);
  }
  EXPECT_THROW(pack_int4_awq_gemm(codes.data(), 4, 2), Error);
}

TEST(Int4Packing, Fp4OddK) {
  for (auto [n, k] : {std::pair<int64_t, int64_t>{3, 64}, {2, 5}}) {
    auto s = random_codes(n * k, 0, 15, 4);
    std::vector<uint8_t> u(s.begin(), s.end());
    auto p = pack_fp4_k(u.data(), n, k);
    expect_round_trip(WeightEncoding::Fp4PackedK, view(p, DType::U8, {n, (k + 1) / 2}), n, k, s);
  }
  const uint8_t two[] = {0x3, 0xA};
  EXPECT_EQ(pack_fp4_k(two, 1, 2)[0], 0xA3);  // low nibble = even k
}

TEST(Int4Packing, ZeroPointsAlongN) {
  for (auto [n, g] : {std::pair<int64_t, int64_t>{9, 3}, {8, 1}, {3, 4}}) {
    auto zp = random_codes(n * g, -8, 7, 5);
    auto p = pack_int4_zero_points_n(zp.data(), n, g);
    ASSERT_EQ(int64_t(p.size()), (n + 7) / 8 * g);
    std::vector<int8_t> out(size_t(n * g));
    unpack_int4_zero_points_n(view(p, DType::I32, {(n + 7) / 8, g}), n, g, out.data());
    EXPECT_EQ(out, zp);
  }
}

TEST(Int4Packing, Int4InInt8AndErrors) {
  auto codes = random_codes(12, -8, 7, 6);
  expect_round_trip(WeightEncoding::Int4InInt8, view(codes, DType::I8, {3, 4}), 3, 4, codes);
  std::vector<int8_t> bad = codes;
  bad[5] = 9;
  std::vector<int8_t> out(12);
  EXPECT_THROW(
      unpack_int4(WeightEncoding::Int4InInt8, view(bad, DType::I8, {3, 4}), 3, 4, out.data()),
      Error);
  EXPECT_THROW(pack_int4_row_pairs(bad.data(), 3, 4), Error);
  // Wrong shape / dtype / encoding.
  EXPECT_THROW(
      check_packed_int4(WeightEncoding::Int4PackedRowPairs, view(codes, DType::I8, {3, 4}), 3, 4),
      Error);
  EXPECT_THROW(check_packed_int4(WeightEncoding::Int4InInt8, view(codes, DType::U8, {3, 4}), 3, 4),
               Error);
  EXPECT_THROW(check_packed_int4(WeightEncoding::Native, view(codes, DType::I8, {3, 4}), 3, 4),
               Error);
}

}  // namespace
}  // namespace lowbit
