// When speculative decoding pays: a verify step costs more than a plain decode step (the MTP
// head's layer and lm_head for the draft, and in MoE models the verified tokens' experts are a
// union), so drafting only wins while enough drafts are accepted. The governor keeps moving
// averages of the acceptance rate and of both steps' times and picks, each step, the kind with
// more tokens per second: (1 + acceptance) / t_spec against 1 / t_plain. It starts with a
// speculative step, measures one plain step, and then tries the other kind now and then so a
// change is noticed: a plain step every kProbePlain while drafting, a draft after a run of plain
// steps that starts at kProbeSpec and doubles (to kProbeSpecMax) while drafts keep not paying,
// so a head that never predicts costs a few percent at most. The acceptance starts from an
// optimistic prior (drafting is what the user asked for) and moves by kWeight per verified
// draft, so one early rejection does not switch drafting off.
#pragma once

#include <cstdint>

namespace lowbit {

class SpecGovernor {
 public:
  static constexpr int64_t kProbePlain = 32, kProbeSpec = 8, kProbeSpecMax = 256;
  static constexpr double kWeight = 0.125, kPriorAcceptance = 0.75;

  bool speculate() {
    ++steps_;
    if (t_spec_ == 0) return true;
    if (t_plain_ == 0) return false;
    if ((1.0 + acceptance_) * t_plain_ >= t_spec_) {  // drafting pays
      spec_interval_ = kProbeSpec;
      plain_run_ = 0;
      return steps_ % kProbePlain != 0;
    }
    if (++plain_run_ < spec_interval_) return false;
    plain_run_ = 0;  // probe with a draft; wait longer before the next one if this one fails too
    spec_interval_ = spec_interval_ * 2 > kProbeSpecMax ? kProbeSpecMax : spec_interval_ * 2;
    return true;
  }
  // A verify step (with the draft it used) took `seconds`; its draft was accepted or not.
  void record_spec(double seconds, bool accepted) { record_spec(seconds, 1, accepted ? 1 : 0); }
  // A server's verify step: `drafts` sequences verified a draft each in one batch that took
  // `seconds`, `accepted` of the drafts were accepted. Tokens per second of both kinds scale
  // alike with the batch, so the same comparison holds.
  void record_spec(double seconds, int64_t drafts, int64_t accepted) {
    ema(t_spec_, seconds);
    for (int64_t i = 0; i < drafts; ++i) acceptance_ += kWeight * (double(i < accepted) - acceptance_);
  }
  void record_plain(double seconds) { ema(t_plain_, seconds); }
  double acceptance() const { return acceptance_; }

 private:
  static void ema(double& avg, double x) { avg = avg == 0 ? x : avg + 0.25 * (x - avg); }
  double t_spec_ = 0, t_plain_ = 0, acceptance_ = kPriorAcceptance;
  int64_t steps_ = 0, plain_run_ = 0, spec_interval_ = kProbeSpec;
};

}  // namespace lowbit
