// --quantize-tp-communications auto: a start-up measurement of the real collectives (fp32
// all-reduce and both INT8 variants, end to end: quantize + exchange + dequantize) at a few
// token counts, and the decision "compress this M×H all-reduce, and how?" from it.
//
// Prediction is piecewise linear in the element count M·H through the measured points (the
// last segment extended beyond the largest probe, the smallest probe's time below it), not one
// latency + bandwidth line: on real links the curve is not a line (TCP slow start, eager vs
// rendezvous protocols, collective algorithm switches), and a least-squares line through a
// latency-dominated small point and a bandwidth-dominated large one mispredicts both ends
// (it chose fp32 for 8192 tokens on a veth link where INT8 was 2.6× faster). The probes should
// span the prefill chunk sizes the server will run.
//
// Every rank must take the same decision, so the measurement is collective (each time is the
// slowest rank's) and rank 0's points are broadcast: all ranks hold the same bytes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "dist/compressed_allreduce.h"

namespace lowbit::dist {

struct LinkProbe {
  int64_t hidden = 2048;                        // H of the model (Qwen3-1.7B: 2048)
  std::vector<int64_t> rows = {16, 256, 2048};  // token counts measured, ascending
  int warmup = 1, reps = 3;                     // per size and method; the median is kept
};

// Measured (elements, seconds) points of one method, ascending in elements.
struct LinkCurve {
  std::vector<double> elements, seconds;
  double predict(double n) const;
};

class LinkModel {
 public:
  LinkModel() = default;
  explicit LinkModel(std::array<LinkCurve, 3> curves) : curves_(std::move(curves)) {}

  // Collective: every rank of ar's communicator calls it with the same probe. Costs about
  // (warmup + reps) × Σ_sizes (t_fp32 + t_int8_ag + t_int8_rs): ~2 s on a 1 Gbit/s link with
  // the default probe, ~0.1 s on shared memory.
  static LinkModel measure(TpAllReduce& ar, const LinkProbe& probe = {});

  double predict_seconds(TpReduce how, int64_t m, int64_t h) const;
  // Compress only when the INT8 variant is predicted at least kMinGain faster than fp32
  // (quantization error is not worth a gain inside the measurement's noise).
  TpReduce choose(int64_t m, int64_t h) const;
  bool compress(int64_t m, int64_t h) const { return choose(m, h) != TpReduce::Fp32; }
  // The INT8 variant to use (when compressing, or when compression is forced on): the
  // all-gather one unless reduce-scatter is predicted kMinGain faster. It quantizes once, not
  // twice (half the error bound), and for p = 2 both move the same bytes, so a near-tie goes
  // to it.
  TpReduce best_int8(int64_t m, int64_t h) const;
  static constexpr double kMinGain = 0.10;

  const LinkCurve& curve(TpReduce how) const { return curves_[size_t(how)]; }
  // "fp32 0.10/1.2/8.5 ms; int8-allgather ..." at the probed sizes.
  std::string describe() const;

 private:
  std::array<LinkCurve, 3> curves_{};
};

}  // namespace lowbit::dist
