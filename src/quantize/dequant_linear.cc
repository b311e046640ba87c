#include "quantize/dequant_linear.h"

#include <algorithm>

#include "core/cpu_features.h"
#include "core/error.h"
#include "kernels/reference/quantize_ref.h"
#include "schemes/float_linear.h"

namespace lowbit::quantize {

namespace {

class DequantLinear final : public LinearMethod {
 public:
  DequantLinear(const std::string& prefix, std::vector<float> w, int64_t n, int64_t k,
                const std::optional<TensorView>& bias, int act_bits, DType weights)
      : k_(k), act_bits_(act_bits) {
    LOWBIT_CHECK(int64_t(w.size()) == n * k, "{}: dequantized weight has {} values, expected {}", prefix, w.size(),
                 n * k);
    LOWBIT_CHECK(weights == DType::F32 || weights == DType::BF16, "{}: dequantized weights are F32 or BF16", prefix);
    LinearTensors t;
    t.prefix = prefix;
    if (weights == DType::BF16) {
      auto b = std::make_shared<std::vector<uint16_t>>(w.size());
      std::transform(w.begin(), w.end(), b->begin(), f32_to_bf16);
      t.weight = TensorView{prefix + ".weight", DType::BF16, {n, k}, b->data()};
      t.storage = b;
    } else {
      auto f = std::make_shared<std::vector<float>>(std::move(w));
      t.weight = TensorView{prefix + ".weight", DType::F32, {n, k}, f->data()};
      t.storage = f;
    }
    t.bias = bias;
    inner_ = std::make_unique<FloatLinear>(t, LinearShape{k, n}, cpu_features());
  }

  void apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const override {
    if (act_bits_ >= 16) return inner_->apply(x, ldx, m, y, ldy, pool);
    // Per-token symmetric int quantization of the rows, then back to float: what the scheme's
    // integer kernels see.
    xq_.resize(size_t(m * k_));
    q_.resize(size_t(m * k_));
    scale_.resize(size_t(m));
    for (int64_t r = 0; r < m; ++r) std::copy_n(x + r * ldx, k_, xq_.data() + r * k_);
    quantize_act_per_token_sym(xq_.data(), m, k_, act_bits_, q_.data(), scale_.data());
    for (int64_t i = 0; i < m * k_; ++i) xq_[size_t(i)] = float(q_[size_t(i)]) * scale_[size_t(i / k_)];
    inner_->apply(xq_.data(), k_, m, y, ldy, pool);
  }
  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  size_t weight_bytes() const override { return inner_->weight_bytes(); }
  std::string describe() const override {
    return (act_bits_ < 16 ? "fake-quant " : "dequantized ") + inner_->describe();
  }

 private:
  int64_t k_;
  int act_bits_;
  std::unique_ptr<LinearMethod> inner_;
  mutable std::vector<float> xq_, scale_;
  mutable std::vector<int8_t> q_;
};

}  // namespace

std::unique_ptr<LinearMethod> make_dequant_linear(const std::string& prefix, std::vector<float> dequant, int64_t n,
                                                  int64_t k, const std::optional<TensorView>& bias, int act_bits,
                                                  DType weights) {
  return std::make_unique<DequantLinear>(prefix, std::move(dequant), n, k, bias, act_bits, weights);
}

}  // namespace lowbit::quantize
