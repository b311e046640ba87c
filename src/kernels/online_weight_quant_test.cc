// The load-time quantizers (online_weight_quant.h) against the reference quantizers they
// replace, bit for bit (codes and scales must be identical: a model quantized at load must
// equal the one `lowbit quantize` writes), and PackedCodes::set_row against the layout its
// header defines, byte by byte.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/quant_types.h"
#include "kernels/online_weight_quant.h"
#include "kernels/packed_weights.h"
#include "kernels/quantize_rows.h"
#include "kernels/reference/quantize_ref.h"

namespace lowbit {
namespace {

// Rows that reach every branch: normal spreads, exact rounding ties (multiples of s/2), all
// zeros, subnormals, values near FLT_MAX, and a single large outlier.
std::vector<std::vector<float>> test_rows(int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<std::vector<float>> rows;
  for (float scale : {1e-3f, 1.0f, 300.0f}) {
    std::vector<float> r(static_cast<size_t>(k));
    for (float& v : r) v = nd(rng) * scale;
    rows.push_back(r);
  }
  // Rounding ties: with amax = qmax the scale is exactly 1, so halves stay halves (4-bit: amax
  // 7 in every 29; 8-bit: 127 in every 16).
  std::vector<float> ties4(static_cast<size_t>(k)), ties8(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) {
    ties4[size_t(i)] = float(int64_t(i % 29) - 14) * 0.5f;
    ties8[size_t(i)] = i % 16 == 0 ? 127.0f : float(int64_t(i % 50) - 25) * 0.5f;
  }
  rows.push_back(ties4);
  rows.push_back(ties8);
  rows.emplace_back(static_cast<size_t>(k), 0.0f);
  std::vector<float> tiny(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) tiny[size_t(i)] = float(i % 5) * std::numeric_limits<float>::denorm_min() * 3.0f;
  rows.push_back(tiny);
  std::vector<float> huge(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) huge[size_t(i)] = (i % 2 ? -1.0f : 0.7f) * 3.0e38f;
  rows.push_back(huge);
  std::vector<float> outlier = rows[1];
  outlier[size_t(k / 3)] = 1e4f;
  rows.push_back(outlier);
  return rows;
}

TEST(OnlineWeightQuant, IntSymMatchesReference) {
  for (int bits : {8, 4})
    for (int64_t k : {int64_t(96), int64_t(100), int64_t(256)})
      for (int64_t group : {int64_t(0), int64_t(32), int64_t(128)}) {
        const int64_t groups = group ? (k + group - 1) / group : 1;
        for (const auto& row : test_rows(k, uint32_t(bits * 1000 + k))) {
          SCOPED_TRACE(testing::Message() << "bits " << bits << " k " << k << " group " << group);
          const IntWeightQuant ref = quantize_weight_sym(row.data(), 1, k, bits, group, IntScaleRule::QMax);
          std::vector<uint8_t> codes(static_cast<size_t>(k), 0xAA);
          std::vector<float> scales(static_cast<size_t>(groups), -1.0f);
          ASSERT_TRUE(quantize_row_int_sym(row.data(), k, bits, group, codes.data(), scales.data()));
          for (int64_t g = 0; g < groups; ++g)
            ASSERT_EQ(std::bit_cast<uint32_t>(scales[size_t(g)]), std::bit_cast<uint32_t>(ref.scale[size_t(g)])) << g;
          for (int64_t i = 0; i < k; ++i)
            ASSERT_EQ(codes[size_t(i)], uint8_t(ref.q[size_t(i)]) & (bits == 8 ? 0xFF : 0x0F)) << "at " << i;
        }
      }
}

// Every MX row kernel this CPU runs (the load-time quantizer and the activations' use them).
TEST(OnlineWeightQuant, MxOcpMatchesReference) {
  const int64_t k = 256;
  for (bool fp4 : {false, true}) {
    auto rows = test_rows(k, fp4 ? 7 : 8);
    // Encoder ties with a scale of exactly 1 (block amax 6 for E2M1, 448 for E4M3; the first
    // element of every block): midpoints between neighbouring codes, normal and subnormal.
    const std::vector<float> mids = fp4 ? std::vector<float>{0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f}
                                        : std::vector<float>{1.0625f, 1.1875f, 0.0029296875f, 0.0009765625f,
                                                             0.0048828125f, 17.0f, 19.0f, 240.0f, 464.0f};
    std::vector<float> ties(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i)
      ties[size_t(i)] = i % 32 == 0 ? (fp4 ? 6.0f : 448.0f) : mids[size_t(i) % mids.size()] * (i % 3 ? 1.0f : -1.0f);
    rows.push_back(ties);
    for (const ActQuantKernels* kernels : act_quant_kernel_list(cpu_features()))
      for (auto& row : rows) {
        SCOPED_TRACE(testing::Message() << kernels->name << (fp4 ? " E2M1" : " E4M3"));
        // Values above the element maximum times 2^127 would need a scale E8M0 cannot hold;
        // the huge row stays within it after a smaller factor.
        for (float& v : row)
          if (std::fabs(v) > 1e30f) v *= 1e-8f;
        std::vector<uint8_t> ref_codes(static_cast<size_t>(k)), ref_scales(static_cast<size_t>(k / 32));
        quantize_mx(row.data(), 1, k, fp4 ? MxElem::E2M1 : MxElem::E4M3, MxScaleRule::Ocp, ref_codes.data(),
                    ref_scales.data());
        std::vector<uint8_t> codes(static_cast<size_t>(k), 0xAA), scales(static_cast<size_t>(k / 32), 0xAA);
        ASSERT_TRUE(kernels->mx_row(row.data(), k, fp4, codes.data(), scales.data()));
        EXPECT_EQ(codes, ref_codes);
        EXPECT_EQ(scales, ref_scales);
      }
  }
}

// Each set's E2M1 and E4M3 encoders over a sweep of values: blocks led by the element maximum
// (6 or 448, so the block scale is exactly 1) followed by 31 values of the sweep, wrapped into
// range (random bit patterns and decimal values at many exponents, subnormal inputs included).
TEST(OnlineWeightQuant, MxEncodersSweep) {
  std::mt19937 rng(3);
  for (bool fp4 : {false, true}) {
    const float top = fp4 ? 6.0f : 448.0f;
    std::vector<float> x;
    for (int b = 0; b < (1 << 15); ++b) {
      x.push_back(b % 2 ? top : -top);
      for (int i = 1; i < 32; ++i) {
        float v = i % 2 ? std::ldexp(float(rng() % 100000) / 1000.0f, int(rng() % 30) - 20)
                        : std::bit_cast<float>((uint32_t(rng()) & 0x807FFFFFu) | (uint32_t(rng() % 134) << 23));
        v = std::fmod(v, top);
        x.push_back(v);
      }
    }
    const int64_t k = int64_t(x.size());
    std::vector<uint8_t> ref_codes(x.size()), ref_scales(x.size() / 32);
    quantize_mx(x.data(), 1, k, fp4 ? MxElem::E2M1 : MxElem::E4M3, MxScaleRule::Ocp, ref_codes.data(), ref_scales.data());
    for (const ActQuantKernels* kernels : act_quant_kernel_list(cpu_features())) {
      std::vector<uint8_t> codes(x.size()), scales(x.size() / 32);
      ASSERT_TRUE(kernels->mx_row(x.data(), k, fp4, codes.data(), scales.data()));
      for (size_t i = 0; i < x.size(); ++i)
        ASSERT_EQ(codes[i], ref_codes[i]) << kernels->name << (fp4 ? " E2M1 " : " E4M3 ") << x[i];
      ASSERT_EQ(scales, ref_scales) << kernels->name;
    }
  }
}

TEST(OnlineWeightQuant, NonFiniteRowsAreRefused) {
  const int64_t k = 64;
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    std::vector<float> row(static_cast<size_t>(k), 0.5f);
    row[41] = bad;
    std::vector<uint8_t> codes(static_cast<size_t>(k)), e8m0(2);
    std::vector<float> scales(2);
    EXPECT_FALSE(quantize_row_int_sym(row.data(), k, 8, 0, codes.data(), scales.data()));
    EXPECT_FALSE(quantize_row_int_sym(row.data(), k, 4, 32, codes.data(), scales.data()));
    for (const ActQuantKernels* kernels : act_quant_kernel_list(cpu_features())) {
      EXPECT_FALSE(kernels->mx_row(row.data(), k, true, codes.data(), e8m0.data())) << kernels->name;
      EXPECT_FALSE(kernels->mx_row(row.data(), k, false, codes.data(), e8m0.data())) << kernels->name;
    }
  }
}

// Byte (and nibble) of code (n, k) as packed_weights.h defines the layout.
uint8_t code_at(const PackedCodes& p, int64_t n, int64_t k) {
  const int64_t step = p.k_step(), t = n / kTileN, lane = n % kTileN;
  const uint8_t* tile = p.tile(t);
  const uint8_t b = tile[((k / step) * kTileN + lane) * 4 + k % 4];
  if (p.bits() == 8) return b;
  return k % 8 < 4 ? b & 0xF : b >> 4;
}

TEST(OnlineWeightQuant, SetRowPacksTheDocumentedLayout) {
  std::mt19937 rng(5);
  for (int bits : {8, 4})
    for (int64_t n : {int64_t(5), int64_t(37)})
      for (int64_t k : {int64_t(3), int64_t(13), int64_t(64)}) {
        PackedCodes p(bits, n, k);
        std::vector<std::vector<uint8_t>> rows(size_t(n), std::vector<uint8_t>(static_cast<size_t>(k)));
        for (int64_t r = n - 1; r >= 0; --r) {  // out of order: rows share cells
          for (auto& c : rows[size_t(r)]) c = uint8_t(rng() & (bits == 8 ? 0xFF : 0x0F));
          p.set_row(r, rows[size_t(r)].data());
        }
        for (int64_t r = 0; r < p.n_pad(); ++r)
          for (int64_t c = 0; c < p.k_pad(); ++c) {
            const uint8_t want = r < n && c < k ? rows[size_t(r)][size_t(c)] : 0;  // padding stays 0
            ASSERT_EQ(code_at(p, r, c), want) << bits << "-bit [" << n << ", " << k << "] at (" << r << ", " << c << ")";
          }
      }
}

}  // namespace
}  // namespace lowbit
