#include "models/rope.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lowbit {

namespace {

// base^(2i/dim) evaluated in fp32 as torch does (`base ** (arange(0, dim, 2).float() / dim)`).
std::vector<float> pos_freqs(double base, int64_t dim) {
  std::vector<float> out(size_t(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) out[size_t(i)] = std::pow(float(base), float(2 * i) / float(dim));
  return out;
}

double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

void apply_llama3(const RopeScaling& s, std::vector<float>& inv_freq) {
  const double old_len = double(s.original_max_position_embeddings);
  const double low_wavelen = old_len / s.low_freq_factor, high_wavelen = old_len / s.high_freq_factor;
  for (float& f : inv_freq) {
    const double wavelen = 2 * M_PI / f;
    float scaled = wavelen > low_wavelen ? float(f / s.factor) : f;
    const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    if (medium) {
      const float smooth = float((old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor));
      scaled = (1 - smooth) * scaled / float(s.factor) + smooth * scaled;
    }
    f = scaled;
  }
}

float apply_yarn(const RopeScaling& s, double base, int64_t dim, std::vector<float>& inv_freq) {
  const double factor = s.factor;
  double attention_factor;
  if (s.attention_factor) {
    attention_factor = *s.attention_factor;
  } else if (s.mscale && s.mscale_all_dim && *s.mscale != 0 && *s.mscale_all_dim != 0) {
    attention_factor = yarn_mscale(factor, *s.mscale) / yarn_mscale(factor, *s.mscale_all_dim);
  } else {
    attention_factor = yarn_mscale(factor, 1.0);
  }
  auto correction_dim = [&](double rotations) {
    return (double(dim) * std::log(double(s.original_max_position_embeddings) / (rotations * 2 * M_PI))) /
           (2 * std::log(base));
  };
  double low = correction_dim(s.beta_fast), high = correction_dim(s.beta_slow);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, double(dim - 1));
  if (low == high) high += 0.001;
  const auto pf = pos_freqs(base, dim);
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float ramp = std::clamp((float(i) - float(low)) / float(high - low), 0.0f, 1.0f);
    const float extrapolation_factor = 1.0f - ramp;
    const float extrapolation = 1.0f / pf[size_t(i)];
    const float interpolation = 1.0f / (float(factor) * pf[size_t(i)]);
    inv_freq[size_t(i)] = interpolation * (1 - extrapolation_factor) + extrapolation * extrapolation_factor;
  }
  return float(attention_factor);
}

}  // namespace

RopeFrequencies rope_frequencies(const ModelConfig& c) {
  RopeFrequencies r;
  const int64_t dim = c.rotary_channels();
  const auto pf = pos_freqs(c.rope_theta, dim);
  r.inv_freq.resize(pf.size());
  for (size_t i = 0; i < pf.size(); ++i) r.inv_freq[i] = 1.0f / pf[i];
  const auto& s = c.rope_scaling;
  if (s.type == "default") {
  } else if (s.type == "linear") {
    for (float& f : r.inv_freq) f /= float(s.factor);
  } else if (s.type == "llama3") {
    apply_llama3(s, r.inv_freq);
  } else if (s.type == "yarn") {
    r.attention_factor = apply_yarn(s, c.rope_theta, dim, r.inv_freq);
  } else {
    fail("rope scaling type '{}' is not supported (default, linear, llama3, yarn)", s.type);
  }
  return r;
}

RopeTable::RopeTable(const ModelConfig& config, int64_t max_positions)
    : freq_(rope_frequencies(config)), half_(config.rotary_channels() / 2) {
  ensure(max_positions);
}

void RopeTable::ensure(int64_t max_positions) {
  if (max_positions <= max_positions_) return;
  cos_.resize(size_t(max_positions * half_));
  sin_.resize(size_t(max_positions * half_));
  for (int64_t p = max_positions_; p < max_positions; ++p) {
    for (int64_t i = 0; i < half_; ++i) {
      // transformers: freqs = (inv_freq ⊗ position) in fp32, then cos/sin, times the factor.
      const float angle = freq_.inv_freq[size_t(i)] * float(p);
      cos_[size_t(p * half_ + i)] = std::cos(angle) * freq_.attention_factor;
      sin_[size_t(p * half_ + i)] = std::sin(angle) * freq_.attention_factor;
    }
  }
  max_positions_ = max_positions;
}

void RopeTable::apply(float* x, int64_t pos) const {
  LOWBIT_CHECK(pos >= 0 && pos < max_positions_, "rope position {} outside table of {}", pos, max_positions_);
  const float* c = cos_.data() + pos * half_;
  const float* s = sin_.data() + pos * half_;
  for (int64_t i = 0; i < half_; ++i) {
    const float a = x[i], b = x[i + half_];
    x[i] = a * c[i] - b * s[i];
    x[i + half_] = b * c[i] + a * s[i];
  }
}

}  // namespace lowbit
