// How a table-decoded GEMM call is split must not change its result: MXFP4 × MXFP4 rows alone
// against the same rows in a prefill call (the register tiles against the int8 panels, which
// take 2-tile blocks and an odd tile alone), any tile sub-range, and CodeGemmArgs::call_id (the
// activations a thread converted for one call are reused for that call's further ranges, never
// for another call's).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/cpu_features.h"
#include "core/quant_types.h"
#include "kernels/quant_gemm.h"
#include "kernels/reference/quantize_ref.h"

namespace lowbit {
namespace {

struct Fp4Table {
  float v[16];
  Fp4Table() {
    for (int c = 0; c < 16; ++c) v[c] = fp4_e2m1_to_f32(uint8_t(c));
  }
};
const Fp4Table kFp4;

// An MXFP4 weight (7 tiles: three 2-tile blocks and one alone) and MXFP4 activations of m rows
// whose block scales span 2^±20, so fp32 group totals round and a changed order would show
// (with similar scales every total is exact in any order).
struct Mxfp4Problem {
  static constexpr int64_t n = 7 * 16 - 3, k = 160, blocks = k / 32;
  int64_t m;
  PackedCodes w{4, n, k};
  AlignedArray<uint8_t> e8m0;
  std::vector<uint8_t> xq;
  std::vector<float> xs;

  Mxfp4Problem(int64_t rows, uint32_t seed) : m(rows) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    std::vector<float> wf(size_t(n * k)), xf(size_t(m * k));
    for (auto& v : wf) v = 0.05f * normal(rng);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t b = 0; b < blocks; ++b) {
        const int e = int(rng() % 41) - 20;  // one exponent per block: its scale
        for (int64_t c = b * 32; c < (b + 1) * 32; ++c) xf[size_t(i * k + c)] = std::ldexp(normal(rng), e);
      }
    std::vector<uint8_t> wc(size_t(n * k)), ws(size_t(n * blocks)), xsu(size_t(m * blocks));
    quantize_mx(wf.data(), n, k, MxElem::E2M1, MxScaleRule::Ocp, wc.data(), ws.data());
    for (int64_t r = 0; r < n; ++r) w.set_row(r, wc.data() + r * k);
    e8m0 = AlignedArray<uint8_t>(size_t(w.n_pad() * blocks));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t b = 0; b < blocks; ++b) e8m0[size_t(((r / 16) * blocks + b) * 16 + r % 16)] = ws[size_t(r * blocks + b)];
    xq.resize(size_t(m * k));
    quantize_mx(xf.data(), m, k, MxElem::E2M1, MxScaleRule::Ocp, xq.data(), xsu.data());
    for (uint8_t u : xsu) xs.push_back(e8m0_to_f32(u));
  }

  // Rows [i0, i0 + rows) into y (ldy n).
  CodeGemmArgs args(int64_t i0, int64_t rows, float* y) const {
    CodeGemmArgs a;
    a.xq = xq.data() + i0 * k;
    a.x_lut = kFp4.v;
    a.x_bits = 4;
    a.ldx = k;
    a.m = rows;
    a.x_scale = xs.data() + i0 * blocks;
    a.ldxs = blocks;
    a.w = &w;
    a.lut = kFp4.v;
    a.group = 32;
    a.scale_e8m0 = e8m0.data();
    a.y = y;
    a.ldy = n;
    return a;
  }
  int64_t tiles() const { return w.n_pad() / kTileN; }
};

std::vector<const QuantGemmKernels*> kernel_sets() { return quant_gemm_kernels(cpu_features()); }

TEST(CodeGemmCall, Mxfp4RowsDoNotDependOnTheirCall) {
  const Mxfp4Problem p(19, 3);
  for (const QuantGemmKernels* k : kernel_sets()) {
    std::vector<float> all(size_t(p.m * p.n)), one(size_t(p.n)), part(size_t(p.m * p.n), -7.0f);
    k->code_gemm(p.args(0, p.m, all.data()), 0, p.tiles());
    for (int64_t i = 0; i < p.m; ++i) {
      k->code_gemm(p.args(i, 1, one.data()), 0, p.tiles());
      for (int64_t j = 0; j < p.n; ++j)
        ASSERT_EQ(one[size_t(j)], all[size_t(i * p.n + j)])
            << k->name << ": row " << i << " alone differs from the " << p.m << "-row call at column " << j;
    }
    // Ranges that start on an odd tile and end on one (blocks of two shift by one).
    k->code_gemm(p.args(0, p.m, part.data()), 0, 1);
    k->code_gemm(p.args(0, p.m, part.data()), 1, 4);
    k->code_gemm(p.args(0, p.m, part.data()), 4, p.tiles());
    for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(part[i], all[i]) << k->name << ": split ranges, element " << i;
  }
}

// One call's ranges with a call_id equal the whole call computed on a fresh thread (whose
// per-thread conversion is empty); calls with other activations that follow on the same thread,
// with their own id or with id 0, must not see an earlier call's conversion.
TEST(CodeGemmCall, CallIdReusesOnlyItsOwnCallsActivations) {
  for (const int64_t m : {int64_t(5), int64_t(17)}) {
    const Mxfp4Problem first(m, 4), second(m, 5);
    for (const QuantGemmKernels* k : kernel_sets()) {
      for (const Mxfp4Problem* p : {&first, &second, &first}) {
        std::vector<float> want(size_t(p->m * p->n)), got(want.size(), -7.0f), plain(want.size(), -7.0f);
        std::thread([&] { k->code_gemm(p->args(0, p->m, want.data()), 0, p->tiles()); }).join();
        const uint64_t id = next_code_gemm_call_id();
        for (int64_t t = 0; t < p->tiles(); t += 2) {
          // A fresh args object per range (gone after it): the reuse must not keep a pointer to
          // the first range's (ASAN reports a stack use after scope if it does).
          CodeGemmArgs a = p->args(0, p->m, got.data());
          a.call_id = id;
          k->code_gemm(a, t, std::min(p->tiles(), t + 2));
        }
        ASSERT_EQ(got, want) << k->name << " m=" << m << ": the ranges of one call with an id";
        k->code_gemm(p->args(0, p->m, plain.data()), 0, p->tiles());
        ASSERT_EQ(plain, want) << k->name << " m=" << m << ": a call with id 0 after one with an id";
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
