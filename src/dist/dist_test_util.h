// Shared by the dist tests: the process's communicator and deterministic per-rank data, so
// every rank can regenerate every other rank's partial sum and compute the reference alone.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "dist/communicator.h"

namespace lowbit::dist {

Communicator& test_comm();

// Rows of N(0, 1) noise from (seed, rank); rows listed in zero_rows are all zero, and when
// outlier != 0 element (outlier_row, outlier_col) of rank `outlier_rank` is set to it.
struct PartialSpec {
  uint32_t seed = 1;
  int64_t m = 0, h = 0;
  std::vector<int64_t> zero_rows;        // zero on every rank
  int64_t zero_row_one_rank = -1;        // zero on rank 0 only
  float outlier = 0.0f;
  int outlier_rank = 0;
  int64_t outlier_row = 0, outlier_col = 0;
};

inline std::vector<float> make_partial(const PartialSpec& s, int rank) {
  std::vector<float> x(size_t(s.m * s.h));
  std::mt19937 rng(s.seed * 7919u + unsigned(rank));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : x) v = dist(rng);
  for (int64_t r : s.zero_rows)
    for (int64_t j = 0; j < s.h; ++j) x[size_t(r * s.h + j)] = 0.0f;
  if (s.zero_row_one_rank >= 0 && rank == 0)
    for (int64_t j = 0; j < s.h; ++j) x[size_t(s.zero_row_one_rank * s.h + j)] = 0.0f;
  if (s.outlier != 0.0f && rank == s.outlier_rank) x[size_t(s.outlier_row * s.h + s.outlier_col)] = s.outlier;
  return x;
}

}  // namespace lowbit::dist
