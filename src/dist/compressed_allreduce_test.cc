// The compressed all-reduce against a scalar reference written from
// ../shared/spec/tp-compression.md, on every rank: output bit-equal to the reference, within
// the stated error bound of the exact sum, and bit-identical across ranks. Also the row
// kernels (each ISA set against the reference) and the fp32 all-reduce.
// Cases are designated initializers of PartialSpec; GCC 12 warns about every member left at
// its default, which is the point of the defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "dist/compressed_allreduce.h"
#include "dist/dist_test_util.h"
#include "dist/int8_rows.h"

namespace lowbit::dist {
namespace {

// --- reference, straight from the spec: s = max|p| / 127, q = round(p / s) (half to even, as
// torch.round), codes clamped to ±127, dequantize q·s, sum in fp32 in rank order.
struct RefRow {
  float scale;
  std::vector<int8_t> q;
};

RefRow ref_quantize(const float* x, int64_t h) {
  float amax = 0.0f;
  for (int64_t j = 0; j < h; ++j) amax = std::max(amax, std::fabs(x[j]));
  RefRow r{amax / 127.0f, std::vector<int8_t>(size_t(h), 0)};
  if (r.scale == 0.0f) return r;
  for (int64_t j = 0; j < h; ++j) {
    float v = x[j] / r.scale;
    v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
    r.q[size_t(j)] = int8_t(std::nearbyint(v));
  }
  return r;
}

// Σ_r deq(quant(p_r[row])) in rank order; the first term is q·s itself.
std::vector<float> ref_sum_row(const std::vector<std::vector<float>>& parts, int64_t row, int64_t h) {
  std::vector<float> acc(size_t(h), 0.0f);
  for (size_t r = 0; r < parts.size(); ++r) {
    const RefRow q = ref_quantize(parts[r].data() + row * h, h);
    for (int64_t j = 0; j < h; ++j) {
      const float d = float(q.q[size_t(j)]) * q.scale;
      acc[size_t(j)] = r == 0 ? d : acc[size_t(j)] + d;
    }
  }
  return acc;
}

std::vector<float> ref_all_gather(const std::vector<std::vector<float>>& parts, int64_t m, int64_t h) {
  std::vector<float> out(size_t(m * h));
  for (int64_t i = 0; i < m; ++i) {
    const auto row = ref_sum_row(parts, i, h);
    std::copy(row.begin(), row.end(), out.begin() + i * h);
  }
  return out;
}

// The owner's rank-ordered sum, re-quantized per token, dequantized by everyone.
std::vector<float> ref_reduce_scatter(const std::vector<std::vector<float>>& parts, int64_t m, int64_t h) {
  std::vector<float> out(size_t(m * h));
  for (int64_t i = 0; i < m; ++i) {
    const auto sum = ref_sum_row(parts, i, h);
    const RefRow q = ref_quantize(sum.data(), h);
    for (int64_t j = 0; j < h; ++j) out[size_t(i * h + j)] = float(q.q[size_t(j)]) * q.scale;
  }
  return out;
}

std::vector<std::vector<float>> all_partials(const PartialSpec& s, int ranks) {
  std::vector<std::vector<float>> parts;
  for (int r = 0; r < ranks; ++r) parts.push_back(make_partial(s, r));
  return parts;
}

// Every rank's output equals rank 0's, byte for byte.
void expect_identical_across_ranks(const std::vector<float>& out) {
  Communicator& comm = test_comm();
  if (out.empty()) return;  // M = 0: nothing to compare (and memcmp may not take null pointers)
  const int64_t bytes = int64_t(out.size() * sizeof(float));
  std::vector<float> all(out.size() * size_t(comm.size()));
  comm.all_gather(out.data(), bytes, all.data());
  for (int r = 1; r < comm.size(); ++r)
    EXPECT_EQ(0, std::memcmp(all.data(), all.data() + out.size() * size_t(r), size_t(bytes)))
        << "rank " << r << " differs from rank 0";
}

// |out − Σ_r p_r| ≤ Σ_r s_r/2 (+ s'/2 for the reduce-scatter variant) + fp32 rounding slack.
void expect_within_bound(const std::vector<float>& out, const std::vector<std::vector<float>>& parts, int64_t m,
                         int64_t h, bool requantized) {
  int64_t bad = 0;
  for (int64_t i = 0; i < m; ++i) {
    double bound = 0, abs_sum_max = 0;
    for (const auto& p : parts) bound += ref_quantize(p.data() + i * h, h).scale / 2.0;
    if (requantized) bound += ref_quantize(ref_sum_row(parts, i, h).data(), h).scale / 2.0;
    for (int64_t j = 0; j < h; ++j) {
      double exact = 0, abs_sum = 0;
      for (const auto& p : parts) {
        exact += p[size_t(i * h + j)];
        abs_sum += std::fabs(p[size_t(i * h + j)]);
      }
      abs_sum_max = std::max(abs_sum_max, abs_sum);
      // fp32 rounding of the divisions, products and p−1 adds: a few ulps of the magnitudes.
      const double slack = 1e-6 * (abs_sum + bound) * double(parts.size() + 2);
      if (std::fabs(double(out[size_t(i * h + j)]) - exact) > bound + slack && bad++ < 5)
        ADD_FAILURE() << "row " << i << " col " << j << ": |" << out[size_t(i * h + j)] << " - " << exact
                      << "| > bound " << bound;
    }
  }
  EXPECT_EQ(bad, 0);
}

struct Case {
  const char* name;
  PartialSpec spec;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  out.push_back({"m0", {.seed = 1, .m = 0, .h = 64}});
  out.push_back({"m1", {.seed = 2, .m = 1, .h = 2048}});
  out.push_back({"h1", {.seed = 3, .m = 5, .h = 1}});
  out.push_back({"odd_h_4097", {.seed = 4, .m = 7, .h = 4097}});
  out.push_back({"odd_h_17", {.seed = 5, .m = 33, .h = 17}});
  out.push_back({"zero_rows", {.seed = 6, .m = 9, .h = 100, .zero_rows = {0, 4, 8}, .zero_row_one_rank = 5}});
  out.push_back({"outlier", {.seed = 7, .m = 6, .h = 1000, .outlier = 3.0e5f, .outlier_rank = 0, .outlier_row = 2,
                             .outlier_col = 999}});
  out.push_back({"huge_outlier", {.seed = 8, .m = 4, .h = 257, .outlier = -1.0e30f, .outlier_rank = 1,
                                  .outlier_row = 3, .outlier_col = 5}});
  out.push_back({"qwen3_shape", {.seed = 9, .m = 64, .h = 2048}});
  return out;
}

void run_case(TpReduce how, const Case& c) {
  Communicator& comm = test_comm();
  SCOPED_TRACE(std::string(tp_reduce_name(how)) + " " + c.name);
  const PartialSpec& s = c.spec;
  const auto parts = all_partials(s, comm.size());
  std::vector<float> x = parts[size_t(comm.rank())];
  TpAllReduce ar(comm);
  ar.run(how, x.data(), s.m, s.h);
  const auto ref = how == TpReduce::Int8AllGather ? ref_all_gather(parts, s.m, s.h)
                                                  : ref_reduce_scatter(parts, s.m, s.h);
  ASSERT_EQ(x.size(), ref.size());
  int64_t diff = 0;
  for (size_t i = 0; i < x.size(); ++i)
    if (std::memcmp(&x[i], &ref[i], sizeof(float)) != 0 && diff++ < 5)
      ADD_FAILURE() << "element " << i << ": " << x[i] << " != reference " << ref[i];
  EXPECT_EQ(diff, 0) << "elements not bit-equal to the reference";
  expect_within_bound(x, parts, s.m, s.h, how == TpReduce::Int8ReduceScatter);
  expect_identical_across_ranks(x);
}

TEST(CompressedAllReduce, AllGatherMatchesReference) {
  for (const Case& c : cases()) run_case(TpReduce::Int8AllGather, c);
}

TEST(CompressedAllReduce, ReduceScatterMatchesReference) {
  for (const Case& c : cases()) run_case(TpReduce::Int8ReduceScatter, c);
}

TEST(CompressedAllReduce, FewerRowsThanRanks) {
  // M = 1 and M = 3 with up to 4 ranks: some ranks own no rows in the reduce-scatter variant.
  for (int64_t m : {1, 2, 3}) run_case(TpReduce::Int8ReduceScatter, {"few_rows", {.seed = 20, .m = m, .h = 31}});
}

TEST(CompressedAllReduce, ResidualAddedAfterTheSum) {
  Communicator& comm = test_comm();
  const PartialSpec s{.seed = 30, .m = 3, .h = 50};
  const auto parts = all_partials(s, comm.size());
  std::vector<float> x = parts[size_t(comm.rank())], residual(x.size(), 0.25f);
  TpAllReduce(comm).run(TpReduce::Int8AllGather, x.data(), s.m, s.h, residual.data());
  const auto ref = ref_all_gather(parts, s.m, s.h);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(residual[i], 0.25f + ref[i]);
}

TEST(CompressedAllReduce, Fp32AllReduceExact) {
  // Small integers: every partial sum is exact in fp32 whatever order MPI adds in.
  Communicator& comm = test_comm();
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(4097), int64_t(1) << 20}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[size_t(i)] = float((i * 31 + comm.rank() * 7) % 1000 - 500);
    TpAllReduce(comm).run(TpReduce::Fp32, x.data(), 1, n);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; ++i) {
      float want = 0;
      for (int r = 0; r < comm.size(); ++r) want += float((i * 31 + r * 7) % 1000 - 500);
      bad += x[size_t(i)] != want;
    }
    EXPECT_EQ(bad, 0) << "n = " << n;
    expect_identical_across_ranks(x);
  }
}

TEST(CompressedAllReduce, ByteCountsFollowTheSpec) {
  // p = 2: both INT8 variants ≈ (M·H + 4M); fp32 ring 4·M·H.
  EXPECT_DOUBLE_EQ(tp_reduce_bytes_per_rank(TpReduce::Fp32, 512, 2048, 2), 4.0 * 512 * 2048);
  EXPECT_DOUBLE_EQ(tp_reduce_bytes_per_rank(TpReduce::Int8AllGather, 512, 2048, 2), 512.0 * 2048 + 4 * 512);
  EXPECT_DOUBLE_EQ(tp_reduce_bytes_per_rank(TpReduce::Int8ReduceScatter, 512, 2048, 2), 512.0 * 2048 + 4 * 512);
  EXPECT_DOUBLE_EQ(tp_reduce_bytes_per_rank(TpReduce::Int8AllGather, 512, 2048, 4), 3.0 * (512.0 * 2048 + 4 * 512));
  EXPECT_DOUBLE_EQ(tp_reduce_bytes_per_rank(TpReduce::Int8ReduceScatter, 512, 2048, 4), 1.5 * (512.0 * 2048 + 4 * 512));
}

TEST(CompressedAllReduce, OwnedRowsCoverEveryRowOnce) {
  for (int p : {1, 2, 3, 4})
    for (int64_t m : {0, 1, 3, 4, 4097}) {
      int64_t next = 0;
      for (int r = 0; r < p; ++r) {
        const RowSlice s = owned_rows(m, r, p);
        EXPECT_EQ(s.begin, next);
        next += s.count;
      }
      EXPECT_EQ(next, m);
    }
}

// Row kernels: every set this CPU runs against the reference quantizer, bit for bit.
TEST(Int8RowKernels, MatchReference) {
  const auto sets = int8_row_kernel_list(cpu_features());
  ASSERT_FALSE(sets.empty());
  for (int64_t h : {1, 15, 16, 17, 100, 4097}) {
    PartialSpec s{.seed = 40, .m = 5, .h = h, .zero_rows = {1}, .outlier = 5e4f, .outlier_row = 3,
                  .outlier_col = h - 1};
    const auto x = make_partial(s, 0);
    for (const Int8RowKernels* k : sets) {
      SCOPED_TRACE(std::string(k->name) + " h=" + std::to_string(h));
      std::vector<int8_t> q(size_t(s.m * h), 99);
      std::vector<float> scale(size_t(s.m), -1.0f), acc(size_t(s.m * h), 0.5f);
      k->quantize(x.data(), h, s.m, h, q.data(), scale.data());
      for (int64_t i = 0; i < s.m; ++i) {
        const RefRow r = ref_quantize(x.data() + i * h, h);
        EXPECT_EQ(scale[size_t(i)], r.scale) << "row " << i;
        EXPECT_EQ(0, std::memcmp(q.data() + i * h, r.q.data(), size_t(h))) << "row " << i;
      }
      // Three "ranks": the codes, the codes reversed, the codes again; rank-ordered fp32 sum.
      std::vector<int8_t> q2(q.rbegin(), q.rend());
      std::vector<float> scale2(scale.rbegin(), scale.rend());
      const int8_t* codes[3] = {q.data(), q2.data(), q.data()};
      const float* scales[3] = {scale.data(), scale2.data(), scale.data()};
      k->dequant_sum(codes, scales, 3, s.m, h, acc.data(), h);
      for (int64_t i = 0; i < s.m * h; ++i) {
        float want = float(q[size_t(i)]) * scale[size_t(i / h)];
        want = want + float(q2[size_t(i)]) * scale2[size_t(i / h)];
        want = want + float(q[size_t(i)]) * scale[size_t(i / h)];
        ASSERT_EQ(acc[size_t(i)], want) << i;
      }
    }
  }
}

// Non-finite inputs: every set gives the same codes and scales (NaN → code 0, skipped by the
// max), so ranks on different ISAs still agree.
TEST(Int8RowKernels, NonFiniteRowsAgreeAcrossSets) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> x(3 * 40, 1.25f);
  x[5] = nan;
  x[40 + 39] = inf;
  x[80 + 7] = -nan;
  x[80 + 8] = -3.0f;
  std::vector<std::vector<int8_t>> codes;
  std::vector<std::vector<float>> scales;
  for (const Int8RowKernels* k : int8_row_kernel_list(cpu_features())) {
    codes.emplace_back(x.size());
    scales.emplace_back(3);
    k->quantize(x.data(), 40, 3, 40, codes.back().data(), scales.back().data());
    EXPECT_EQ(codes.back()[5], 0) << k->name;
    EXPECT_EQ(scales.back()[0], 1.25f / 127.0f) << k->name;
    EXPECT_EQ(scales.back()[2], 3.0f / 127.0f) << k->name;
  }
  for (size_t i = 1; i < codes.size(); ++i) {
    EXPECT_EQ(codes[i], codes[0]);
    EXPECT_EQ(0, std::memcmp(scales[i].data(), scales[0].data(), 3 * sizeof(float)));
  }
}

}  // namespace
}  // namespace lowbit::dist
