// Test-only: the operands of one random IntGemmArgs problem, shared by int_gemm_amx_test and
// int_gemm_vnni_test. Canonical form (codes [n][k], xq [m][ldxq]) next to the packed form
// the kernels read, the optional operands a test chooses to pass, and the IntGemmArgs
// contract (quant_gemm.h: exact int64 group sums Σ xq·(w − z), scales applied in double).
// Each test draws its own values through these pieces, in its own random order and ranges,
// and derives its own rounding bound from the per-group sums the oracle reports.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/packed_weights.h"
#include "kernels/quant_gemm.h"

namespace lowbit::int_gemm_test {

// The exact sums of one group for one output (i, r).
struct GroupSums {
  int64_t part = 0;  // Σ xq·(w − z): what the contract scales
  int64_t raw = 0;   // Σ xq·w
  int64_t xsum = 0;  // Σ xq (the row group sum)
  int64_t zero = 0;  // z
};

struct Operands {
  int bits = 8;
  int64_t m = 0, n = 0, k = 0, group = 0;
  PackedCodes w;
  int64_t kp = 0, ldxq = 0, groups = 1;
  std::vector<int8_t> codes, xq;  // [n][k], [max(m, 1)][ldxq]
  std::vector<float> gsv;         // group scales [n][groups] as set in gs, 1 where unset
  std::vector<int32_t> zeros;     // zero points [n][groups] as set in gz, 0 where unset
  TiledParams gs, gz;
  std::vector<int32_t> cib, rgs;  // [n_pad], [max(m, 1)][groups]
  std::vector<float> rs;          // [max(m, 1)]
  AlignedArray<float> cs, cb;
  // Which optional operands args() passes; the others are null.
  bool pass_gs = false, pass_gz = false, pass_rgs = false, pass_cib = false, pass_scales = false,
       pass_bias = false;

  // Every buffer sized (unit scales, zero zero points); xq rows are ldxq_gap bytes past k_pad.
  Operands(int bits_, int64_t m_, int64_t n_, int64_t k_, int64_t group_, int64_t ldxq_gap)
      : bits(bits_), m(m_), n(n_), k(k_), group(group_), w(bits_, n_, k_) {
    kp = w.k_pad();
    ldxq = kp + ldxq_gap;
    groups = group ? (kp + group - 1) / group : 1;
    codes.resize(size_t(n * k));
    gsv.assign(size_t(n * groups), 1.0f);
    zeros.assign(size_t(n * groups), 0);
    gs = TiledParams(n, groups);
    gz = TiledParams(n, groups);
    cib.assign(size_t(w.n_pad()), 0);
    rs.assign(size_t(std::max<int64_t>(m, 1)), 1.0f);
    cs = padded_row_vector(n);
    cb = padded_row_vector(n);
  }

  // The whole code range: [-128, 127] or [-8, 7].
  std::uniform_int_distribution<int> code_dist() const {
    const int wmax = bits == 8 ? 127 : 7;
    return std::uniform_int_distribution<int>(-wmax - 1, wmax);
  }
  void draw_codes(std::mt19937& rng) {
    auto wd = code_dist();
    for (auto& c : codes) c = int8_t(wd(rng));
  }
  // Packs codes into w (call after the last edit of codes).
  void pack_codes() {
    std::vector<uint8_t> row(static_cast<size_t>(k));
    const uint8_t mask = bits == 8 ? 0xFF : 0x0F;
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t j = 0; j < k; ++j) row[size_t(j)] = uint8_t(codes[size_t(r * k + j)]) & mask;
      w.set_row(r, row.data());
    }
  }
  // Rows of xd draws up to k, zeros up to k_pad, `junk` past it that no kernel may read.
  void draw_activations(std::mt19937& rng, std::uniform_int_distribution<int> xd, int8_t junk) {
    xq.assign(size_t(std::max<int64_t>(m, 1) * ldxq), junk);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < kp; ++j) xq[size_t(i * ldxq + j)] = j < k ? int8_t(xd(rng)) : 0;
  }
  // rgs from xq (call after the last edit of xq).
  void sum_row_groups() {
    rgs.assign(size_t(std::max<int64_t>(m, 1) * groups), 0);
    const int64_t gk = group ? group : kp;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < kp; ++j) rgs[size_t(i * groups + j / gk)] += xq[size_t(i * ldxq + j)];
  }
  void set_group_scale(int64_t r, int64_t g, float v) {
    gs.set(r, g, v);
    gsv[size_t(r * groups + g)] = v;
  }
  void set_zero(int64_t r, int64_t g, int z) {  // integer-valued, in code units
    gz.set(r, g, float(z));
    zeros[size_t(r * groups + g)] = z;
  }

  IntGemmArgs args(float* y, int64_t ldy) const {
    IntGemmArgs a;
    a.xq = xq.data();
    a.ldxq = ldxq;
    a.m = m;
    a.w = &w;
    a.group = group;
    a.group_scale = pass_gs ? &gs : nullptr;
    a.group_zero = pass_gz ? &gz : nullptr;
    a.row_group_sum = pass_rgs ? rgs.data() : nullptr;
    a.col_int_bias = pass_cib ? cib.data() : nullptr;
    a.row_scale = pass_scales ? rs.data() : nullptr;
    a.col_scale = pass_scales ? cs.data() : nullptr;
    a.col_bias = pass_bias ? cb.data() : nullptr;
    a.y = y;
    a.ldy = ldy;
    return a;
  }

  // Row scale · column scale and column bias of output (i, r) as passed (1 and 0 when not).
  double outer_scale(int64_t i, int64_t r) const { return pass_scales ? double(rs[size_t(i)]) * double(cs[size_t(r)]) : 1.0; }
  double bias(int64_t r) const { return pass_bias ? cb[size_t(r)] : 0.0; }

  // The contract in double for output (i, r): (Σ_g part_g·scale_g + int bias)·rs·cs + bias.
  // Calls on_group(g, sums, scale_g) per group so the caller can bound the kernel's rounding.
  template <class OnGroup>
  double oracle(int64_t i, int64_t r, OnGroup&& on_group) const {
    const int64_t gk = group ? group : kp;
    double v = 0;
    for (int64_t g = 0; g < groups; ++g) {
      GroupSums s;
      s.zero = zeros[size_t(r * groups + g)];
      for (int64_t j = g * gk; j < std::min(kp, (g + 1) * gk); ++j) {
        const int64_t x = xq[size_t(i * ldxq + j)], c = j < k ? codes[size_t(r * k + j)] : 0;
        s.part += x * (c - s.zero);
        s.raw += x * c;
        s.xsum += x;
      }
      const double scale = pass_gs ? gsv[size_t(r * groups + g)] : 1.0;
      v += double(s.part) * scale;
      on_group(g, s, scale);
    }
    if (pass_cib) v += cib[size_t(r)];
    return v * outer_scale(i, r) + bias(r);
  }
};

}  // namespace lowbit::int_gemm_test
