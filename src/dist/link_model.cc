// LinkModel: measurement, interpolation and decision (see link_model.h).
#include "dist/link_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include "core/error.h"

namespace lowbit::dist {

namespace {

constexpr std::array<TpReduce, 3> kMethods = {TpReduce::Fp32, TpReduce::Int8AllGather, TpReduce::Int8ReduceScatter};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

double LinkCurve::predict(double n) const {
  const size_t k = elements.size();
  LOWBIT_CHECK(k > 0 && seconds.size() == k, "link curve without points");
  if (k == 1 || n <= elements[0]) return seconds[0];
  size_t i = 1;
  while (i + 1 < k && n > elements[i]) ++i;  // segment [i-1, i]; the last one extends beyond
  const double slope = std::max(0.0, (seconds[i] - seconds[i - 1]) / (elements[i] - elements[i - 1]));
  return std::max(0.0, seconds[i - 1] + slope * (n - elements[i - 1]));
}

LinkModel LinkModel::measure(TpAllReduce& ar, const LinkProbe& probe) {
  if (probe.rows.empty() || probe.hidden <= 0 || probe.reps <= 0)
    fail("link probe: needs token counts, hidden > 0 and reps > 0 (hidden {}, reps {})", probe.hidden, probe.reps);
  for (size_t i = 0; i < probe.rows.size(); ++i)
    if (probe.rows[i] <= 0 || (i && probe.rows[i] <= probe.rows[i - 1]))
      fail("link probe: token counts must be positive and ascending (got {} after {})", probe.rows[i],
           i ? probe.rows[i - 1] : 0);
  Communicator& comm = ar.communicator();
  const int64_t h = probe.hidden, max_rows = probe.rows.back();
  std::vector<float> data(size_t(max_rows * h)), work(data.size());
  std::mt19937 rng(1234u + unsigned(comm.rank()));
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : data) v = dist(rng);

  // times[(size · 3 + method) · reps + rep]: this rank's seconds, then the slowest rank's.
  const size_t methods = kMethods.size(), reps = size_t(probe.reps);
  std::vector<double> times(probe.rows.size() * methods * reps);
  for (size_t si = 0; si < probe.rows.size(); ++si) {
    const int64_t m = probe.rows[si];
    for (size_t mi = 0; mi < methods; ++mi) {
      for (int rep = -probe.warmup; rep < probe.reps; ++rep) {
        std::memcpy(work.data(), data.data(), size_t(m * h) * sizeof(float));
        comm.barrier();
        const auto t0 = std::chrono::steady_clock::now();
        ar.run(kMethods[mi], work.data(), m, h);
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (rep >= 0) times[(si * methods + mi) * reps + size_t(rep)] = dt;
      }
    }
  }
  comm.all_reduce_max(times.data(), int64_t(times.size()));

  // medians[method · sizes + size], rank 0's for everyone: identical bytes, identical decisions.
  std::vector<double> medians(methods * probe.rows.size());
  for (size_t si = 0; si < probe.rows.size(); ++si)
    for (size_t mi = 0; mi < methods; ++mi) {
      const auto first = times.begin() + std::ptrdiff_t((si * methods + mi) * reps);
      medians[mi * probe.rows.size() + si] = median(std::vector<double>(first, first + std::ptrdiff_t(reps)));
    }
  comm.broadcast(medians.data(), int64_t(medians.size() * sizeof(double)), 0);

  std::array<LinkCurve, 3> curves;
  for (size_t mi = 0; mi < methods; ++mi)
    for (size_t si = 0; si < probe.rows.size(); ++si) {
      curves[mi].elements.push_back(double(probe.rows[si]) * double(h));
      curves[mi].seconds.push_back(medians[mi * probe.rows.size() + si]);
    }
  return LinkModel(std::move(curves));
}

double LinkModel::predict_seconds(TpReduce how, int64_t m, int64_t h) const {
  return curve(how).predict(double(m) * double(h));
}

TpReduce LinkModel::choose(int64_t m, int64_t h) const {
  const TpReduce int8 = best_int8(m, h);
  return predict_seconds(int8, m, h) < (1.0 - kMinGain) * predict_seconds(TpReduce::Fp32, m, h) ? int8
                                                                                               : TpReduce::Fp32;
}

TpReduce LinkModel::best_int8(int64_t m, int64_t h) const {
  return predict_seconds(TpReduce::Int8ReduceScatter, m, h) <
                 (1.0 - kMinGain) * predict_seconds(TpReduce::Int8AllGather, m, h)
             ? TpReduce::Int8ReduceScatter
             : TpReduce::Int8AllGather;
}

std::string LinkModel::describe() const {
  std::string out;
  for (TpReduce how : kMethods) {
    const LinkCurve& c = curve(how);
    out += fmt::format("{}{}", out.empty() ? "" : "; ", tp_reduce_name(how));
    for (size_t i = 0; i < c.elements.size(); ++i)
      out += fmt::format("{}{:.3g}", i ? "/" : " ", c.seconds[i] * 1e3);
    out += " ms";
  }
  return out;
}

}  // namespace lowbit::dist
