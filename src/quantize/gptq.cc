#include "quantize/gptq.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/quant_types.h"
#include "core/thread_pool.h"
#include "kernels/float_gemm.h"
#include "quantize/dense_linalg.h"

namespace lowbit::quantize {

namespace {

ComputeDType compute_of(DType d) {
  return d == DType::BF16 ? ComputeDType::BF16 : d == DType::F16 ? ComputeDType::F16 : ComputeDType::F32;
}

// ---- The Hessian factor: U upper triangular with Uᵀ U = (H + damp)⁻¹, as the reference's
// cholesky(cholesky_inverse(cholesky(H)), upper=True). With R the order reversal,
// R H R = L Lᵀ (lower Cholesky) gives H = V Vᵀ with V = R L R upper, so U = V⁻¹ = R L⁻¹ R:
// one Cholesky and one triangular inverse instead of two Cholesky and a full inverse.

// (cholesky_lower and invert_lower: dense_linalg.h.)

// ---- One (row, group)'s quantization parameters and the anchors that make the writer
// recompute them from writer_w.
struct GroupParams {
  float s = 1, zp = 0;        // dequant (q - zp) · s
  float lo = 0, hi = 0;       // the range writer_w is clamped to; its extremes are anchors
  int8_t cmin = 0, cmax = 0;  // codes of lo and hi: GPTQ's codes stay within them
  int64_t anchor_lo = -1, anchor_hi = -1;  // processing positions of the extreme elements
  int64_t last = -1, last2 = -1;  // the group's last and second-to-last processing positions
  bool need_lo = false, need_hi = false;   // the writer must see lo / hi in writer_w
  bool either = false;                     // symmetric: one of lo, hi suffices (|.| = amax)
  bool have_lo = false, have_hi = false;
};

struct Grid {
  IntGrid g;
  float qmin, qmax;
  explicit Grid(const IntGrid& grid) : g(grid) {
    if (g.rule == IntGrid::Rule::Awq) {
      qmin = 0;
      qmax = 15;
    } else {
      qmax = float((1 << (g.bits - 1)) - 1);
      qmin = -qmax - 1;
    }
  }
  float c(float v) const { return round_to_compute(v, g.compute); }
  // The writer's code for value x (kernels/reference/quantize_ref.cc, same operations).
  int8_t code(float x, const GroupParams& p) const {
    switch (g.rule) {
      case IntGrid::Rule::CtSym:
      case IntGrid::Rule::QMaxSym:
        return int8_t(round_half_even(clampf(c(x / p.s), qmin, qmax)));
      case IntGrid::Rule::CtAsym:
        return int8_t(round_half_even(clampf(c(c(x / p.s) + p.zp), qmin, qmax)));
      case IntGrid::Rule::Awq:
        return int8_t(clampf(round_half_even(c(c(x) / p.s)) + p.zp, 0.0f, 15.0f));
    }
    return 0;
  }
  float dequant(int8_t q, const GroupParams& p) const { return (float(q) - p.zp) * p.s; }

  // Parameters for the range [lo, hi] (writer_w's extremes), by calling the writer's own
  // quantizer on those two values: it derives the same scale from writer_w.
  GroupParams for_range(float lo, float hi) const {
    GroupParams p;
    const float ends[2] = {lo, hi};
    IntWeightQuant r;
    switch (g.rule) {
      case IntGrid::Rule::CtSym:
        r = quantize_weight_sym(ends, 1, 2, g.bits, 0, IntScaleRule::CompressedTensors, g.compute);
        break;
      case IntGrid::Rule::QMaxSym: r = quantize_weight_sym(ends, 1, 2, g.bits, 0, IntScaleRule::QMax, g.compute); break;
      case IntGrid::Rule::CtAsym: r = quantize_weight_asym_ct(ends, 1, 2, g.bits, 0, g.compute); break;
      case IntGrid::Rule::Awq: r = quantize_weight_awq(ends, 1, 2, 0, g.compute); break;
    }
    p.s = r.scale[0];
    p.zp = r.zero.empty() ? 0.0f : float(r.zero[0]);
    p.lo = lo;
    p.hi = hi;
    if (g.rule == IntGrid::Rule::CtSym || g.rule == IntGrid::Rule::QMaxSym) {
      p.either = hi > 0;
    } else if (g.rule == IntGrid::Rule::CtAsym) {
      p.need_lo = lo < 0;  // compressed-tensors forces 0 into the range: 0 needs no anchor
      p.need_hi = hi > 0;
    } else {
      p.need_lo = p.need_hi = true;
    }
    p.cmin = code(lo, p);
    p.cmax = code(hi, p);
    return p;
  }

  // Σ weight · (x - x̂)² over the group on the grid of p.
  double rounding_error(const std::vector<float>& x, const float* weight, const GroupParams& p) const {
    double e = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double d = double(x[i]) - double(dequant(std::clamp(code(x[i], p), p.cmin, p.cmax), p));
      e += (weight ? double(weight[i]) : 1.0) * d * d;
    }
    return e;
  }

  // Parameters of one group from its current values v[0, len) at processing positions
  // `positions`: the writer's round to nearest of them, or with `search`, the range shrunk by
  // the factor in 1, 0.975, ..., 0.7 with the least diag(H)-weighted rounding error (`hdiag`
  // by processing position), like llm-compressor's mse observer; writer_w then holds the
  // shrunk extremes, so the writer derives the same clipped scale.
  GroupParams params(const float* v, int64_t len, const int64_t* positions, const float* hdiag, bool search) const {
    std::vector<float> x(v, v + len);
    if (g.rule == IntGrid::Rule::Awq)
      for (float& e : x) e = c(e);  // the AWQ writer rounds weights to F16 first
    const auto [mn, mx] = std::minmax_element(x.begin(), x.end());
    const int64_t imin = mn - x.begin(), imax = mx - x.begin();
    float lo = *mn, hi = *mx;
    int64_t anchor_lo = positions[imin], anchor_hi = positions[imax];
    if (g.rule == IntGrid::Rule::CtSym || g.rule == IntGrid::Rule::QMaxSym) {
      const bool neg = -*mn > *mx;
      hi = neg ? -*mn : *mx;
      lo = -hi;
      anchor_lo = anchor_hi = positions[neg ? imin : imax];
    } else if (g.rule == IntGrid::Rule::CtAsym) {
      lo = std::min(lo, 0.0f);
      hi = std::max(hi, 0.0f);
    }
    GroupParams p = for_range(lo, hi);
    if (search) {
      std::vector<float> wgt(static_cast<size_t>(len));
      for (int64_t i = 0; i < len; ++i) wgt[size_t(i)] = hdiag ? hdiag[positions[i]] : 1.0f;
      double best = rounding_error(x, wgt.data(), p);
      for (int step = 1; step <= 12; ++step) {
        const float f = 1.0f - 0.025f * float(step);
        float l = lo * f, h = hi * f;
        if (g.rule == IntGrid::Rule::Awq) {
          l = c(l);
          h = c(h);
        }
        const GroupParams cand = for_range(l, h);
        const double e = rounding_error(x, wgt.data(), cand);
        if (e < best) {
          best = e;
          p = cand;
        }
      }
    }
    p.anchor_lo = anchor_lo;
    p.anchor_hi = anchor_hi;
    std::vector<int64_t> order(positions, positions + len);
    std::sort(order.begin(), order.end());
    p.last = order.back();
    p.last2 = len > 1 ? order[size_t(len - 2)] : order.back();
    return p;
  }
};

// Where a group must force an extreme code (see gptq.h), planned by a first GPTQ pass that
// forces nothing: the element where forcing adds the least error; -1 = no plan.
struct ForcePlan {
  int64_t hi = -1, lo = -1;  // processing positions (symmetric grids: `hi`, towards `hi_low`)
  bool hi_low = false;       // symmetric: force to cmin instead of cmax
};

// First pass: the cheapest element of each group to force, as (extra error, position).
struct ForceCandidates {
  float cost_hi = INFINITY, cost_lo = INFINITY;
  int64_t pos_hi = -1, pos_lo = -1;
  bool hi_low = false;
};

// The code to store at processing position p of a group whose natural code is `q`, so that
// the writer can recompute the group's scale: some code must end at the extreme (cmin / cmax)
// its anchor value maps to. An extreme reached naturally is free. Otherwise one is forced at
// the planned position; without a plan (the first pass found the extreme, but this pass
// diverged) on the first element one step from it once the anchor's column is reached, and
// on the group's last column at the latest (the low one a column earlier when both are
// needed, so both fit).
int8_t keep_anchor(const GroupParams& gp, const ForcePlan& plan, int64_t p, int8_t q) {
  auto force_to = [&](bool need, bool have, int64_t planned, int64_t anchor, int64_t last, int8_t extreme) {
    if (!need || have || q == extreme) return false;
    if (planned >= 0) return p == planned || p == last;
    return p == last || (p >= anchor && std::abs(int(q) - int(extreme)) <= 1);
  };
  if (gp.either && !gp.have_lo && !gp.have_hi && q != gp.cmin && q != gp.cmax) {
    const int8_t extreme = plan.hi >= 0 && p == plan.hi ? (plan.hi_low ? gp.cmin : gp.cmax) : q < 0 ? gp.cmin : gp.cmax;
    if (force_to(true, false, plan.hi, gp.anchor_hi, gp.last, extreme)) return extreme;
    return q;
  }
  const int64_t lo_last = gp.need_hi && gp.anchor_lo != gp.last ? gp.last2 : gp.last;
  if (force_to(gp.need_lo, gp.have_lo, plan.lo, gp.anchor_lo, lo_last, gp.cmin)) return gp.cmin;
  if (force_to(gp.need_hi, gp.have_hi, plan.hi, gp.anchor_hi, gp.last, gp.cmax)) return gp.cmax;
  return q;
}

}  // namespace

std::optional<IntGrid> int_grid_for(OutFormat f, const LayerPlan& l, DType weight_dtype, std::string* why_not) {
  const std::string& s = l.scheme;
  IntGrid g;
  g.group_size = l.group_size;
  auto no = [&](std::string why) -> std::optional<IntGrid> {
    if (why_not) *why_not = std::move(why);
    return std::nullopt;
  };
  if (f == OutFormat::CompressedTensors) {
    g.compute = compute_of(weight_dtype);
    if (s == "W4A16" || s == "W4A16_ASYM") {
      g.bits = 4;
      g.rule = s == "W4A16" ? IntGrid::Rule::CtSym : IntGrid::Rule::CtAsym;
      return g;
    }
    if (s == "W8A8" || s == "W8A8_STATIC" || s == "W8A8_STATIC_ASYM") {
      g.bits = 8;
      g.group_size = 0;
      return g;
    }
    return no(fmt::format("{} is a floating-point weight scheme; GPTQ chooses integer codes", s));
  }
  if (f == OutFormat::MsModelSlim) {
    g.rule = IntGrid::Rule::QMaxSym;
    g.compute = ComputeDType::F32;
    if (s == "W8A8" || s == "W8A8_DYNAMIC" || s == "W4A4_DYNAMIC") {
      g.bits = s == "W4A4_DYNAMIC" ? 4 : 8;
      g.group_size = 0;
      return g;
    }
    if (s == "W4A8_DYNAMIC") {
      if (l.group_size > 0)
        return no("msmodelslim's per-group W4A8_DYNAMIC quantizes int8 codes a second time (two-level scales), "
                  "which GPTQ does not drive; use --group-size 0 (per channel) or --algorithm rtn");
      g.bits = 4;
      return g;
    }
    return no(fmt::format("{} is a microscaling (MX) floating-point scheme; GPTQ chooses integer codes", s));
  }
  g.rule = IntGrid::Rule::Awq;
  g.bits = 4;
  g.compute = ComputeDType::F16;
  return g;
}

double output_sq_error(const float* w, const float* w_hat, int64_t n, int64_t k, const std::vector<double>& h) {
  double total = 0;
  std::vector<double> d(static_cast<size_t>(k));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t i = 0; i < k; ++i) d[size_t(i)] = double(w[r * k + i]) - double(w_hat[r * k + i]);
    for (int64_t i = 0; i < k; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < k; ++j) acc += h[size_t(i * k + j)] * d[size_t(j)];
      total += d[size_t(i)] * acc;
    }
  }
  return total;
}

GptqResult gptq_quantize(const std::string& layer, const float* w_in, int64_t n, int64_t k,
                         const std::vector<double>& h_in, const IntGrid& grid_in, const GptqOptions& o,
                         ThreadPool& pool) {
  if (int64_t(h_in.size()) != k * k) fail("{}: GPTQ Hessian has {} entries, expected {}²", layer, h_in.size(), k);
  if (!(o.damp >= 0) || !std::isfinite(o.damp)) fail("--gptq-damp {} must be a finite number >= 0", o.damp);
  if (o.block <= 0) fail("{}: GPTQ block size {} must be positive", layer, o.block);
  const Grid grid(grid_in);
  const int64_t gs = grid_in.group_size > 0 ? grid_in.group_size : k;
  if (k % gs != 0) fail("{}: in_features {} is not a multiple of the group size {}", layer, k, gs);
  const int64_t groups = k / gs;
  const bool gidx = o.act_order == ActOrder::Group && groups > 1;
  const bool static_groups = o.static_groups || o.act_order == ActOrder::Static;

  GptqResult r;
  r.n = n;
  r.k = k;
  std::vector<double> h = h_in;
  std::vector<float> w(w_in, w_in + n * k);

  // Dead inputs (never non-zero in calibration): any weight is as good; the reference sets
  // them to 0 and the Hessian diagonal to 1 so the factorisation exists.
  for (int64_t i = 0; i < k; ++i)
    if (h[size_t(i * k + i)] == 0.0) {
      h[size_t(i * k + i)] = 1.0;
      for (int64_t row = 0; row < n; ++row) w[size_t(row * k + i)] = 0.0f;
      ++r.dead_columns;
    }

  // Processing order: descending diag(H) under act-order (stable, so ties keep input order).
  std::vector<int64_t> perm(static_cast<size_t>(k)), pos(static_cast<size_t>(k));
  std::iota(perm.begin(), perm.end(), 0);
  if (o.act_order != ActOrder::None)
    std::stable_sort(perm.begin(), perm.end(),
                     [&](int64_t a, int64_t b) { return h[size_t(a * k + a)] > h[size_t(b * k + b)]; });
  for (int64_t p = 0; p < k; ++p) pos[size_t(perm[size_t(p)])] = p;

  // diag(H) by processing position: the weights of the optional scale search.
  std::vector<float> hd(static_cast<size_t>(k));
  for (int64_t p = 0; p < k; ++p) hd[size_t(p)] = float(h[size_t(perm[size_t(p)] * (k + 1))]);

  // Damping, then the factor in processing order, reversed (see the top of this file).
  double mean_diag = 0;
  for (int64_t i = 0; i < k; ++i) mean_diag += h[size_t(i * k + i)];
  mean_diag /= double(k);
  std::vector<double> a(size_t(k * k));
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      const int64_t pi = perm[size_t(k - 1 - i)], pj = perm[size_t(k - 1 - j)];
      a[size_t(i * k + j)] = h[size_t(pi * k + pj)] + (i == j ? o.damp * mean_diag : 0.0);
    }
  h.clear();
  h.shrink_to_fit();
  if (const int64_t bad = cholesky_lower(a, k, pool.size()); bad >= 0)
    fail("{}: the GPTQ Hessian (with damping {} · mean diagonal) is not positive definite at column {}; "
         "raise --gptq-damp (e.g. 0.1) or use more calibration tokens",
         layer, o.damp, perm[size_t(k - 1 - bad)]);
  invert_lower(a, k, pool.size());  // a = L⁻¹
  // Uᵀ, with U[p, q] = L⁻¹[k−1−p, k−1−q] (p ≤ q) in processing order: the weight operand of the
  // lazy batch updates' GEMM; each block's own U rows are copied out of it (ublk below).
  std::vector<float> ut(size_t(k * k), 0.0f);
  pool.parallel_for(k, 16, [&](int64_t q0, int64_t q1, int) {
    for (int64_t q = q0; q < q1; ++q)
      for (int64_t p = 0; p <= q; ++p) ut[size_t(q * k + p)] = float(a[size_t((k - 1 - p) * k + (k - 1 - q))]);
  });
  a.clear();
  a.shrink_to_fit();

  // Group of processing position p in the checkpoint's grouping (g_idx: groups contiguous
  // in processing order).
  auto group_of = [&](int64_t p) { return gidx ? p / gs : perm[size_t(p)] / gs; };
  // Whole groups per lazy block when scales are taken at group start, so a group's values
  // are fully updated when its parameters are computed.
  int64_t block = o.block;
  if (!static_groups && gs < k) block = std::max<int64_t>(gs, o.block / gs * gs);

  // Working matrix in processing order.
  std::vector<float> wp(size_t(n * k));
  for (int64_t row = 0; row < n; ++row)
    for (int64_t p = 0; p < k; ++p) wp[size_t(row * k + p)] = w[size_t(row * k + perm[size_t(p)])];
  std::vector<int8_t> qp(size_t(n * k));
  std::vector<float> deqp(size_t(n * k));
  std::vector<GroupParams> params(size_t(n * groups));
  std::vector<double> row_loss(size_t(n), 0.0);
  std::vector<int64_t> row_forced(size_t(n), 0);

  std::vector<ForcePlan> plans(size_t(n * groups));

  // Each chunk of rows runs twice: a first pass that forces no code and notes, for every group
  // left without its extreme code, the element where forcing it would add the least error;
  // then the real pass, forcing there (gptq.h: why codes are forced at all).
  const FloatGemmKernel& gemm = pick_float_gemm(DType::F32, cpu_features());
  pool.parallel_for(n, 8, [&](int64_t r0, int64_t r1, int) {
    const int64_t rows = r1 - r0;
    std::vector<float> err(size_t(rows * block), 0.0f), upd(size_t(rows * k)), ublk(size_t(block * block));
    std::vector<int64_t> positions(static_cast<size_t>(gs));
    std::vector<float> vals(static_cast<size_t>(gs));
    const std::vector<float> w0(wp.begin() + r0 * k, wp.begin() + r1 * k);
    std::vector<ForceCandidates> cand(size_t(rows * groups));
    if (static_groups)  // from the (dead-zeroed) original weights, in checkpoint groups
      for (int64_t row = r0; row < r1; ++row)
        for (int64_t g = 0; g < groups; ++g) {
          const int64_t c0 = gidx ? 0 : g * gs;
          for (int64_t i = 0; i < gs; ++i) {
            const int64_t p = gidx ? g * gs + i : pos[size_t(c0 + i)];
            positions[size_t(i)] = p;
            vals[size_t(i)] = wp[size_t(row * k + p)];
          }
          params[size_t(row * groups + g)] = grid.params(vals.data(), gs, positions.data(), hd.data(), o.scale_search);
        }
    const std::vector<GroupParams> params0(params.begin() + r0 * groups, params.begin() + r1 * groups);

    for (const bool planning : {true, false}) {
      if (!planning) {  // start over from the same weights and parameters
        std::copy(w0.begin(), w0.end(), wp.begin() + r0 * k);
        std::copy(params0.begin(), params0.end(), params.begin() + r0 * groups);
      }
      for (int64_t i1 = 0; i1 < k; i1 += block) {
        const int64_t i2 = std::min(k, i1 + block);
        // The block's rows of U, U[i1 + t, i1 + j] for t ≤ j, contiguous per row.
        for (int64_t t = 0; t < i2 - i1; ++t)
          for (int64_t j = t; j < i2 - i1; ++j) ublk[size_t(t * block + j)] = ut[size_t((i1 + j) * k + i1 + t)];
        for (int64_t p = i1; p < i2; ++p) {
          const int64_t g = group_of(p);
          if (!static_groups && p % gs == 0)  // group start: contiguous [p, p + gs) here
            for (int64_t row = r0; row < r1; ++row) {
              for (int64_t i = 0; i < gs; ++i) positions[size_t(i)] = p + i;
              params[size_t(row * groups + g)] =
                  grid.params(wp.data() + row * k + p, gs, positions.data(), hd.data(), o.scale_search);
            }
          const float* up = ublk.data() + (p - i1) * block;  // up[j − i1] = U[p, j], j in [p, i2)
          const float d = up[p - i1];
          for (int64_t row = r0; row < r1; ++row) {
            float* wr = wp.data() + row * k;
            GroupParams& gp = params[size_t(row * groups + g)];
            const float x = wr[p];
            const int8_t natural = std::clamp(grid.code(x, gp), gp.cmin, gp.cmax);
            int8_t q = natural;
            if (planning) {
              ForceCandidates& c = cand[size_t((row - r0) * groups + g)];
              const float here = std::fabs(x - grid.dequant(q, gp));
              const float to_lo = std::fabs(x - grid.dequant(gp.cmin, gp)) - here;
              const float to_hi = std::fabs(x - grid.dequant(gp.cmax, gp)) - here;
              if ((gp.either || gp.need_hi) && q != gp.cmax && q != gp.cmin) {
                const bool low = gp.either && to_lo < to_hi;
                const float cost = low ? to_lo : to_hi;
                if (cost < c.cost_hi) c = {cost, c.cost_lo, p, c.pos_lo, low};
              }
              if (gp.need_lo && q != gp.cmin && to_lo < c.cost_lo) {
                c.cost_lo = to_lo;
                c.pos_lo = p;
              }
            } else {
              q = keep_anchor(gp, plans[size_t(row * groups + g)], p, natural);
              row_forced[size_t(row)] += q != natural;
            }
            gp.have_lo = gp.have_lo || q == gp.cmin;
            gp.have_hi = gp.have_hi || q == gp.cmax;
            const float xq = grid.dequant(q, gp);
            const float e = (x - xq) / d;
            if (!planning) row_loss[size_t(row)] += double(e) * double(e) / 2.0;
            qp[size_t(row * k + p)] = q;
            deqp[size_t(row * k + p)] = xq;
            wr[p] = xq;
            err[size_t((row - r0) * block + (p - i1))] = e;
            for (int64_t j = p + 1; j < i2; ++j) wr[j] -= e * up[j - i1];
          }
        }
        // Lazy batch update of everything right of the block, as the reference's
        // W[:, i2:] −= Err · U[i1:i2, i2:]: one fp32 GEMM (Err rows × Uᵀ rows), then subtracted.
        if (i2 < k) {
          gemm.run({err.data(), block, ut.data() + i2 * k + i1, k, upd.data(), k - i2, rows, i2 - i1, 0, k - i2});
          for (int64_t row = r0; row < r1; ++row) {
            float* wr = wp.data() + row * k;
            const float* ur = upd.data() + (row - r0) * (k - i2);
            for (int64_t j = i2; j < k; ++j) wr[j] -= ur[j - i2];
          }
        }
      }
      if (planning)
        for (int64_t row = r0; row < r1; ++row)
          for (int64_t g = 0; g < groups; ++g) {
            const GroupParams& gp = params[size_t(row * groups + g)];
            const ForceCandidates& c = cand[size_t((row - r0) * groups + g)];
            ForcePlan& f = plans[size_t(row * groups + g)];
            if (gp.either && !gp.have_lo && !gp.have_hi) f = {c.pos_hi, -1, c.hi_low};
            if (gp.need_hi && !gp.have_hi) f.hi = c.pos_hi;
            if (gp.need_lo && !gp.have_lo && c.pos_lo != f.hi) f.lo = c.pos_lo;
          }
    }
  });

  // Results in the writer's column order: processing order under g_idx, else the input's.
  r.writer_w.resize(size_t(n * k));
  r.q.resize(size_t(n * k));
  r.dequant.resize(size_t(n * k));
  r.scale.resize(size_t(n * groups));
  r.zero.resize(size_t(n * groups));
  for (int64_t row = 0; row < n; ++row) {
    for (int64_t p = 0; p < k; ++p) {
      const int64_t out = gidx ? p : perm[size_t(p)];
      const GroupParams& gp = params[size_t(row * groups + group_of(p))];
      r.q[size_t(row * k + out)] = qp[size_t(row * k + p)];
      r.writer_w[size_t(row * k + out)] = std::clamp(deqp[size_t(row * k + p)], gp.lo, gp.hi);
      r.dequant[size_t(row * k + perm[size_t(p)])] = deqp[size_t(row * k + p)];
    }
    // Anchors: one element per needed extreme takes the exact value the scale came from.
    for (int64_t g = 0; g < groups; ++g) {
      const GroupParams& gp = params[size_t(row * groups + g)];
      r.scale[size_t(row * groups + g)] = gp.s;
      r.zero[size_t(row * groups + g)] = gp.zp;
      bool lo_done = !gp.need_lo, hi_done = !gp.need_hi, any_done = !gp.either;
      for (int64_t i = g * gs; i < (g + 1) * gs; ++i) {
        float& v = r.writer_w[size_t(row * k + i)];
        const int8_t q = r.q[size_t(row * k + i)];
        if (!lo_done && q == gp.cmin) {
          v = gp.lo;
          lo_done = true;
        } else if (!hi_done && q == gp.cmax) {
          v = gp.hi;
          hi_done = true;
        } else if (!any_done && (q == gp.cmin || q == gp.cmax)) {
          v = q == gp.cmin ? gp.lo : gp.hi;
          any_done = true;
        }
      }
    }
  }
  if (gidx) r.perm.assign(perm.begin(), perm.end());
  for (int64_t row = 0; row < n; ++row) {
    r.loss += row_loss[size_t(row)];
    r.forced += row_forced[size_t(row)];
  }
  return r;
}

}  // namespace lowbit::quantize
