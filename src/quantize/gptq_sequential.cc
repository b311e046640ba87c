#include "quantize/gptq_sequential.h"

#include <fmt/format.h>

#include <memory>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "models/decoder.h"
#include "quantize/hessian.h"
#include "schemes/float_linear.h"

namespace lowbit::quantize {

namespace {

// Forwards to a layer owned elsewhere (the stage keeps the model's own layer aside while
// observers sit in its slot).
class BorrowedLinear final : public LinearMethod {
 public:
  explicit BorrowedLinear(const LinearMethod& target) : t_(target) {}
  void apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const override {
    t_.apply(x, ldx, m, y, ldy, pool);
  }
  int64_t in_features() const override { return t_.in_features(); }
  int64_t out_features() const override { return t_.out_features(); }
  size_t weight_bytes() const override { return t_.weight_bytes(); }
  std::string describe() const override { return t_.describe(); }

 private:
  const LinearMethod& t_;
};

// Thrown after the stage's last layer has seen its input: the rest of the forward would
// only compute layers whose inputs this stage does not need.
struct StageDone {};

class StopAfterLinear final : public LinearMethod {
 public:
  explicit StopAfterLinear(std::unique_ptr<LinearMethod> inner) : inner_(std::move(inner)) {}
  void apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const override {
    inner_->apply(x, ldx, m, y, ldy, pool);
    throw StageDone{};
  }
  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  size_t weight_bytes() const override { return inner_->weight_bytes(); }
  std::string describe() const override { return inner_->describe(); }

 private:
  std::unique_ptr<LinearMethod> inner_;
};

// A finished layer: its dequantized GPTQ weights in fp32 through the float kernels.
class DequantLinear final : public LinearMethod {
 public:
  DequantLinear(const std::string& prefix, std::vector<float> w, int64_t n, int64_t k,
                const std::optional<TensorView>& bias)
      : w_(std::move(w)) {
    LinearTensors t;
    t.prefix = prefix;
    t.weight = TensorView{prefix + ".weight", DType::F32, {n, k}, w_.data()};
    t.bias = bias;
    inner_ = std::make_unique<FloatLinear>(t, LinearShape{k, n}, cpu_features());
  }
  void apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const override {
    inner_->apply(x, ldx, m, y, ldy, pool);
  }
  int64_t in_features() const override { return inner_->in_features(); }
  int64_t out_features() const override { return inner_->out_features(); }
  size_t weight_bytes() const override { return inner_->weight_bytes(); }
  std::string describe() const override { return "GPTQ-dequantized " + inner_->describe(); }

 private:
  std::vector<float> w_;
  std::unique_ptr<FloatLinear> inner_;
};

// Layers that read the same input share a Hessian.
std::string hessian_key(const std::string& prefix) {
  for (const char* s : {"q_proj", "k_proj", "v_proj"})
    if (prefix.ends_with(std::string("self_attn.") + s)) return prefix.substr(0, prefix.size() - 6) + "qkv";
  for (const char* s : {"gate_proj", "up_proj"})
    if (prefix.ends_with(std::string("mlp.") + s)) return prefix.substr(0, prefix.rfind('.') + 1) + "gate_up";
  return prefix;
}

}  // namespace

std::map<std::string, LayerCalib> run_gptq_sequential(const std::filesystem::path& model_dir, const Checkpoint& ckpt,
                                                      const QuantPlan& plan, const GptqSequentialOptions& o,
                                                      const GptqEmit& emit) {
  if (o.tokens.empty()) fail("GPTQ calibration: no tokens");
  if (o.seq_len <= 0) fail("--calib-seq-len {} must be positive", o.seq_len);
  auto model = DecoderModel::load(model_dir);
  const ModelConfig& config = model->config();
  if (config.moe.num_experts > 0)
    fail("--algorithm gptq: {} is a mixture-of-experts model; GPTQ here handles dense decoder layers only",
         model_dir.string());
  const int64_t total = int64_t(o.tokens.size());
  const int64_t stride = (total + o.max_rows - 1) / std::max<int64_t>(1, o.max_rows);
  const int64_t num_layers = config.num_hidden_layers;
  const bool head_stage = o.grids.count("lm_head") > 0;
  const int64_t stages = num_layers + (head_stage ? 1 : 0);
  ThreadPool pool(o.threads);
  std::map<std::string, LayerCalib> observed;

  auto in_stage = [&](const std::string& prefix, int64_t stage) {
    return stage == num_layers ? prefix == "lm_head" : prefix.starts_with(fmt::format("model.layers.{}.", stage));
  };
  for (int64_t stage = 0; stage < stages; ++stage) {
    bool work = false;
    for (const auto& [prefix, grid] : o.grids) work = work || in_stage(prefix, stage);
    if (!work) {
      if (o.progress) o.progress(stage + 1, stages);
      continue;
    }
    // Install observers: Stop(Hessian(Observing(Borrowed(model's layer)))).
    std::map<std::string, std::unique_ptr<LinearMethod>> originals;
    std::map<std::string, std::unique_ptr<HessianAccumulator>> hessians;
    const std::string last = stage == num_layers ? "lm_head" : fmt::format("model.layers.{}.mlp.down_proj", stage);
    model->for_each_linear([&](const std::string& prefix, std::unique_ptr<LinearMethod>& m) {
      if (!in_stage(prefix, stage)) return;
      originals[prefix] = std::move(m);
      std::unique_ptr<LinearMethod> obs = std::make_unique<ObservingLinear>(
          std::make_unique<BorrowedLinear>(*originals[prefix]), observed[prefix], stride,
          o.max_rows);
      if (o.grids.count(prefix)) {
        auto& acc = hessians[hessian_key(prefix)];
        const bool owner = !acc;
        if (owner) acc = std::make_unique<HessianAccumulator>(originals[prefix]->in_features());
        obs = std::make_unique<HessianLinear>(std::move(obs), *acc, owner);
      }
      if (prefix == last && stage < num_layers) obs = std::make_unique<StopAfterLinear>(std::move(obs));
      m = std::move(obs);
    });
    std::vector<float> logits;
    for (int64_t begin = 0; begin < total; begin += o.seq_len) {
      const int64_t len = std::min(o.seq_len, total - begin);
      KvCache cache = model->make_cache(1, len);
      // The lm_head stage needs every token's logits: otherwise the head sees one row per chunk.
      SequenceChunk chunk{0, 0, std::span<const int32_t>(o.tokens.data() + begin, size_t(len)), stage == num_layers,
                          {}};
      try {
        model->forward({&chunk, 1}, cache, pool, logits);
      } catch (const StageDone&) {
      }
    }

    // GPTQ on every layer of the stage, in model order; then the model runs the results.
    std::map<std::string, std::unique_ptr<LinearMethod>> replaced;
    for (const LayerPlan& l : plan.layers) {
      if (!in_stage(l.layer.prefix, stage)) continue;
      auto g = o.grids.find(l.layer.prefix);
      if (g == o.grids.end()) continue;
      const HessianAccumulator& acc = *hessians.at(hessian_key(l.layer.prefix));
      if (acc.rows() == 0) fail("{}: no calibration rows reached this layer", l.layer.prefix);
      const int64_t n = l.layer.out_features, k = l.layer.in_features;
      const TensorView v = ckpt.get(l.layer.prefix + ".weight");
      std::vector<float> w(size_t(n * k));
      convert_to_f32(v.dtype, v.data, w.data(), w.size());
      const std::vector<double> h = acc.hessian();
      GptqResult r = gptq_quantize(l.layer.prefix, w.data(), n, k, h, g->second, o.gptq, pool);
      std::optional<TensorView> bias;
      if (ckpt.has(l.layer.prefix + ".bias")) bias = ckpt.get(l.layer.prefix + ".bias");
      std::vector<float> dequant = r.dequant;
      emit(l, std::move(r), observed[l.layer.prefix], h);
      replaced[l.layer.prefix] = std::make_unique<DequantLinear>(l.layer.prefix, std::move(dequant), n, k, bias);
    }
    model->for_each_linear([&](const std::string& prefix, std::unique_ptr<LinearMethod>& m) {
      if (!in_stage(prefix, stage)) return;
      auto it = replaced.find(prefix);
      m = it != replaced.end() ? std::move(it->second) : std::move(originals[prefix]);
    });
    if (o.progress) o.progress(stage + 1, stages);
  }
  return observed;
}

}  // namespace lowbit::quantize
