#include "quantize/gptq_sequential.h"

#include <fmt/format.h>

#include <memory>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "models/decoder.h"
#include "quantize/dequant_linear.h"
#include "quantize/hessian.h"
#include "core/dtype.h"
#include "core/runtime_options.h"
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

// Thrown by the stage's last layer once its input is observed: nothing reads its product.
struct StageDone {};

class StopBeforeCompute final : public LinearMethod {
 public:
  explicit StopBeforeCompute(const LinearMethod& shape) : in_(shape.in_features()), out_(shape.out_features()) {}
  void apply(const float*, int64_t, int64_t, float*, int64_t, ThreadPool&) const override { throw StageDone{}; }
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  size_t weight_bytes() const override { return 0; }
  std::string describe() const override { return "stage end"; }

 private:
  int64_t in_, out_;
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

std::map<std::string, LayerCalib> run_gptq_sequential(std::shared_ptr<const Checkpoint> ckpt_ptr,
                                                      const QuantPlan& plan, const GptqSequentialOptions& o,
                                                      const GptqEmit& emit) {
  if (o.tokens.empty()) fail("GPTQ calibration: no tokens");
  if (o.seq_len <= 0) fail("--calib-seq-len {} must be positive", o.seq_len);
  const Checkpoint& ckpt = *ckpt_ptr;
  const std::filesystem::path model_dir = ckpt.dir();
  auto model = DecoderModel::load(ckpt_ptr);
  const ModelConfig& config = model->config();
  if (config.moe.num_experts > 0)
    fail("--algorithm gptq: {} is a mixture-of-experts model; GPTQ here handles dense decoder layers only",
         model_dir.string());
  if (model->has_recurrent_state())
    fail("--algorithm gptq: {} has linear-attention layers; GPTQ here handles attention-only decoders",
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
  auto has_work = [&](int64_t stage) {
    for (const auto& [prefix, grid] : o.grids)
      if (in_stage(prefix, stage)) return true;
    return false;
  };
  int64_t last_stage = -1;  // stages after the last with work need not run at all
  for (int64_t stage = 0; stage < stages; ++stage)
    if (has_work(stage)) last_stage = stage;
  // The activations a layer multiplies: BF16-rounded or fp32 (see the header).
  auto act_of = [&](const std::string& prefix) {
    return FloatLinear::activation_type(runtime_options().float_activations, ckpt.get(prefix + ".weight").dtype,
                                        cpu_features());
  };

  // One sequence per --calib-seq-len tokens, each with its residual stream.
  struct Sequence {
    SequenceChunk chunk;
    std::vector<float> x;
  };
  std::vector<Sequence> seqs;
  for (int64_t begin = 0; begin < total; begin += o.seq_len) {
    const int64_t len = std::min(o.seq_len, total - begin);
    // The lm_head stage needs every token's logits: otherwise the head sees one row per sequence.
    seqs.push_back({SequenceChunk{0, 0, std::span<const int32_t>(o.tokens.data() + begin, size_t(len)), true, {}}, {}});
  }
  KvCache cache = model->make_cache(1, std::min(o.seq_len, total));
  for (Sequence& s : seqs) model->embed({&s.chunk, 1}, cache, s.x);
  std::vector<float> logits;
  // Runs the stage's layer (or the head) over every sequence; the head's logits are dropped.
  auto run_stage = [&](int64_t stage, bool observe_only) {
    for (Sequence& s : seqs) {
      try {
        if (stage == num_layers) {
          model->forward_head({&s.chunk, 1}, cache, s.x, pool, logits);
        } else if (observe_only) {
          std::vector<float> x = s.x;  // a stopped layer leaves it as it was; never written back
          model->forward_layer(stage, {&s.chunk, 1}, cache, pool, x);
        } else {
          model->forward_layer(stage, {&s.chunk, 1}, cache, pool, s.x);
        }
      } catch (const StageDone&) {
      }
    }
  };

  for (int64_t stage = 0; stage <= last_stage; ++stage) {
    if (!has_work(stage)) {  // the layer as it is, to move the residual streams on
      run_stage(stage, false);
      if (o.progress) o.progress(stage + 1, stages);
      continue;
    }
    // Observers: Hessian(Observing(Borrowed(model's layer))), the last one of a stage
    // stopping before its product.
    std::map<std::string, std::unique_ptr<LinearMethod>> originals;
    std::map<std::string, std::unique_ptr<HessianAccumulator>> hessians;
    const std::string last = stage == num_layers ? "lm_head" : fmt::format("model.layers.{}.mlp.down_proj", stage);
    model->for_each_linear([&](const std::string& prefix, std::unique_ptr<LinearMethod>& m) {
      if (!in_stage(prefix, stage)) return;
      originals[prefix] = std::move(m);
      const LinearMethod& original = *originals[prefix];
      std::unique_ptr<LinearMethod> inner = prefix == last ? std::unique_ptr<LinearMethod>(new StopBeforeCompute(original))
                                                           : std::make_unique<BorrowedLinear>(original);
      std::unique_ptr<LinearMethod> obs =
          std::make_unique<ObservingLinear>(std::move(inner), observed[prefix], stride, o.max_rows);
      if (o.grids.count(prefix)) {
        auto& acc = hessians[hessian_key(prefix)];
        const bool owner = !acc;
        if (owner) acc = std::make_unique<HessianAccumulator>(original.in_features(), act_of(prefix));
        obs = std::make_unique<HessianLinear>(std::move(obs), *acc, owner);
      }
      m = std::move(obs);
    });
    run_stage(stage, true);
    // Each distinct input's H, made from its sums in place.
    std::map<std::string, std::vector<double>> stage_h;
    for (auto& [key, acc] : hessians) {
      if (acc->rows() == 0) fail("{}: no calibration rows reached this layer", key);
      stage_h[key] = acc->release_hessian();
    }
    hessians.clear();
    std::map<std::string, int64_t> uses;  // layers still to read each H: freed after the last
    for (const auto& [prefix, grid] : o.grids)
      if (in_stage(prefix, stage)) ++uses[hessian_key(prefix)];

    // GPTQ on every layer of the stage, in model order; then the model runs the results.
    std::map<std::string, std::unique_ptr<LinearMethod>> replaced;
    for (const LayerPlan& l : plan.layers) {
      if (!in_stage(l.layer.prefix, stage)) continue;
      auto g = o.grids.find(l.layer.prefix);
      if (g == o.grids.end()) continue;
      const int64_t n = l.layer.out_features, k = l.layer.in_features;
      const TensorView v = ckpt.get(l.layer.prefix + ".weight");
      std::vector<float> w(size_t(n * k));
      convert_to_f32(v.dtype, v.data, w.data(), w.size());
      const std::vector<double>& h = stage_h.at(hessian_key(l.layer.prefix));
      GptqResult r = gptq_quantize(l.layer.prefix, w.data(), n, k, h, g->second, o.gptq, pool);
      std::optional<TensorView> bias;
      if (ckpt.has(l.layer.prefix + ".bias")) bias = ckpt.get(l.layer.prefix + ".bias");
      if (stage < last_stage)  // a later stage reads this layer's output
        replaced[l.layer.prefix] = make_dequant_linear(l.layer.prefix, r.dequant, n, k, bias, 16,
                                                       act_of(l.layer.prefix) == FloatAct::BF16 ? DType::BF16 : DType::F32);
      emit(l, std::move(r), observed[l.layer.prefix], h);
      if (--uses[hessian_key(l.layer.prefix)] == 0) stage_h.erase(hessian_key(l.layer.prefix));
    }
    stage_h.clear();
    if (stage < last_stage) {  // the next layer's input, through this one's GPTQ weights
      model->for_each_linear([&](const std::string& prefix, std::unique_ptr<LinearMethod>& m) {
        if (!in_stage(prefix, stage)) return;
        auto it = replaced.find(prefix);
        m = it != replaced.end() ? std::move(it->second) : std::make_unique<BorrowedLinear>(*originals[prefix]);
      });
      run_stage(stage, false);
    }
    // The float layers back (the GPTQ weights are no longer needed).
    model->for_each_linear([&](const std::string& prefix, std::unique_ptr<LinearMethod>& m) {
      if (in_stage(prefix, stage)) m = std::move(originals[prefix]);
    });
    if (o.progress) o.progress(stage + 1, stages);
  }
  if (o.progress && last_stage + 1 < stages) o.progress(stages, stages);
  return observed;
}

}  // namespace lowbit::quantize
