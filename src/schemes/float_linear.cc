#include "schemes/float_linear.h"

#include <cstring>

#include "core/error.h"
#include "core/runtime_options.h"
#include "core/thread_pool.h"
#include "kernels/packed_weights.h"

namespace lowbit {

namespace {
// Columns per thread-pool grain: a multiple of every kernel's register tile width (4 or 8
// weight rows for the AVX kernels, one 16-row AMX strip).
constexpr int64_t kColumnGrain = 16;
// Smaller weights stay in place: a huge page is 2 MiB, and below it a copy gains nothing.
constexpr size_t kCopyFromBytes = size_t(2) << 20;
}  // namespace

FloatLinear::FloatLinear(const LinearTensors& t, LinearShape shape, const CpuFeatures& cpu)
    : weight_(t.weight), storage_(t.storage), shape_(shape) {
  const auto& w = t.weight;
  if (w.dtype != DType::BF16 && w.dtype != DType::F16 && w.dtype != DType::F32)
    fail("{}: FLOAT linear weight must be BF16, F16 or F32, got {}", w.name, dtype_name(w.dtype));
  if (w.shape != std::vector<int64_t>{shape.out_features, shape.in_features})
    fail("{}: expected shape [{}, {}], got {}", w.name, shape.out_features, shape.in_features, w.shape_str());
  if (t.bias) {
    const auto& b = *t.bias;
    if (b.shape != std::vector<int64_t>{shape.out_features})
      fail("{}: expected bias shape [{}], got {}", b.name, shape.out_features, b.shape_str());
    if (b.dtype != DType::BF16 && b.dtype != DType::F16 && b.dtype != DType::F32)
      fail("{}: bias must be BF16, F16 or F32, got {}", b.name, dtype_name(b.dtype));
    bias_.resize(size_t(shape.out_features));
    convert_to_f32(b.dtype, b.data, bias_.data(), bias_.size());
  }
  kernel_ = &pick_float_gemm(w.dtype, activation_type(runtime_options().float_activations, w.dtype, cpu), cpu);
  // Weights in the checkpoint's mapping (no storage of their own) move into huge pages
  // (AlignedArray advises them). The caller then releases the mapped pages, as for a scheme that
  // repacks (reads_checkpoint_in_place() is false): only the layer being loaded is resident
  // twice, for a moment (this layer does not release them itself: a caller's view with no
  // storage need not be a file mapping, and releasing anonymous memory would zero it).
  // Why copy: see RuntimeOptions::float_weights.
  if (!t.storage && runtime_options().float_weights == "copy" && w.nbytes() >= kCopyFromBytes) {
    auto copy = std::make_shared<AlignedArray<uint8_t>>(w.nbytes());
    std::memcpy(copy->data(), w.data, w.nbytes());
    weight_.data = copy->data();
    storage_ = std::move(copy);
    copied_ = true;
  }
}

FloatAct FloatLinear::activation_type(const std::string& policy, DType wtype, const CpuFeatures& cpu) {
  if (wtype != DType::BF16 || policy == "f32") return FloatAct::F32;
  if (policy == "bf16") return FloatAct::BF16;
  if (policy != "auto") fail("float activations: '{}' is not one of auto|bf16|f32", policy);
  return cpu.bf16() ? FloatAct::BF16 : FloatAct::F32;
}

void FloatLinear::apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const {
  const FloatGemmKernel* kernel = kernel_;
  pool.parallel_for(shape_.out_features, kColumnGrain, [&](int64_t n0, int64_t n1, int) {
    kernel->run({x, ldx, weight_.data, shape_.in_features, y, ldy, m, shape_.in_features, n0, n1});
    if (!bias_.empty())
      for (int64_t i = 0; i < m; ++i)
        for (int64_t n = n0; n < n1; ++n) y[i * ldy + n] += bias_[size_t(n)];
  });
}

std::string FloatLinear::describe() const {
  return fmt::format("FLOAT {} via {} ({} activations)", dtype_name(weight_.dtype), kernel_->name,
                     float_act_name(kernel_->act));
}

}  // namespace lowbit
