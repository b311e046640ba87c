#include "quantize/scheme_probe.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "core/error.h"
#include "core/thread_pool.h"
#include "models/decoder.h"
#include "runtime/eval_text.h"
#include "runtime/kl_divergence.h"
#include "tokenizer/tokenizer.h"

namespace lowbit::quantize {

namespace {

enum class Mode { Compute, Record, Replay, Zero };

// The switch installed on every linear layer of the probe's model.
class SwitchLinear final : public LinearMethod {
 public:
  explicit SwitchLinear(std::unique_ptr<LinearMethod> base) : base_(std::move(base)) {}

  void apply(const float* x, int64_t ldx, int64_t m, float* y, int64_t ldy, ThreadPool& pool) const override {
    const int64_t n = base_->out_features();
    if (mode == Mode::Zero) {
      for (int64_t r = 0; r < m; ++r) std::fill_n(y + r * ldy, n, 0.0f);
      return;
    }
    if (mode == Mode::Replay) {
      LOWBIT_CHECK(cursor < records.size() && int64_t(records[cursor].size()) == m * n,
                   "scheme search: replay of call {} does not match the float run", cursor);
      const float* rec = records[cursor++].data();
      for (int64_t r = 0; r < m; ++r) std::copy_n(rec + r * n, n, y + r * ldy);
      return;
    }
    (swap ? *swap : *base_).apply(x, ldx, m, y, ldy, pool);
    if (mode == Mode::Record) {
      std::vector<float> rec(size_t(m * n));
      for (int64_t r = 0; r < m; ++r) std::copy_n(y + r * ldy, n, rec.data() + r * n);
      records.push_back(std::move(rec));
    }
  }
  int64_t in_features() const override { return base_->in_features(); }
  int64_t out_features() const override { return base_->out_features(); }
  size_t weight_bytes() const override { return base_->weight_bytes(); }
  std::string describe() const override { return "switched " + base_->describe(); }

  // Set between forwards by KldProbe; apply() is const, the model holds the layer as const.
  mutable Mode mode = Mode::Compute;
  mutable const LinearMethod* swap = nullptr;
  mutable std::vector<std::vector<float>> records;
  mutable size_t cursor = 0;

 private:
  std::unique_ptr<LinearMethod> base_;
};

// The tokenizer's BOS when its add_special_tokens puts one first: `lowbit eval` puts it at the
// start of every window then, and the search scores windows as eval does.
std::optional<int32_t> window_bos(const std::filesystem::path& dir) {
  const Tokenizer tok = Tokenizer::from_dir(dir);
  const auto bos = tok.bos_id();
  if (!bos) return std::nullopt;
  const auto with = tok.encode("a", true), without = tok.encode("a", false);
  if (with.size() > without.size() && with.front() == *bos) return bos;
  return std::nullopt;
}

// The layer whose replayed output makes this one's unnecessary: o_proj for q/k/v, down_proj
// for gate/up; empty for the others.
std::string consumer_of(const std::string& prefix) {
  for (const char* s : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"})
    if (prefix.ends_with(s)) return prefix.substr(0, prefix.size() - std::string(s).size()) + "self_attn.o_proj";
  for (const char* s : {"mlp.gate_proj", "mlp.up_proj"})
    if (prefix.ends_with(s)) return prefix.substr(0, prefix.size() - std::string(s).size()) + "mlp.down_proj";
  return {};
}

bool writes_residual(const std::string& prefix) {
  return prefix.ends_with("self_attn.o_proj") || prefix.ends_with("mlp.down_proj");
}

}  // namespace

float exp_nonpositive(float x) {
  x = std::max(x, -87.0f);
  // x = r·ln2 + f with r = rint(x / ln2) (1.5·2^23 pushes the fraction out), ln2 in two
  // parts so f is exact to float precision (Cody–Waite), |f| ≤ ln2 / 2.
  const float r = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float f = (x - r * 0.693145751953125f) - r * 1.428606765330187e-6f;
  float p = 1.0f / 5040;  // Taylor of e^f to degree 7: error < 0.347^8 / 8! ≈ 5e-9
  p = p * f + 1.0f / 720;
  p = p * f + 1.0f / 120;
  p = p * f + 1.0f / 24;
  p = p * f + 1.0f / 6;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  p = p * f + 1.0f;
  return p * std::bit_cast<float>((int32_t(r) + 127) << 23);
}

double row_kl(const float* p, double p_log_p, double p_sum, const float* logits, int64_t vocab) {
  const float mx = *std::max_element(logits, logits + vocab);
  constexpr int64_t kChunk = 256;
  float e[kChunk];
  double sum = 0, dot = 0;
  for (int64_t b = 0; b < vocab; b += kChunk) {
    const int64_t len = std::min(kChunk, vocab - b);
    for (int64_t j = 0; j < len; ++j) e[j] = exp_nonpositive(logits[b + j] - mx);
    float s = 0;
    for (int64_t j = 0; j < len; ++j) s += e[j];
    sum += s;
    for (int64_t j = 0; j < len; ++j) dot += double(p[b + j]) * double(logits[b + j]);
  }
  const double lse = double(mx) + std::log(sum);
  return p_log_p - dot + p_sum * lse;
}

struct KldProbe::State {
  std::unique_ptr<DecoderModel> model;
  ThreadPool pool;
  EvalWindows windows;
  std::unique_ptr<WindowRunner> runner;
  std::vector<std::string> order;  // layer prefixes in execution order
  std::vector<SwitchLinear*> layers;
  std::vector<int64_t> consumer;  // index of consumer_of(order[i]), or -1
  std::map<std::string, size_t> index;
  int64_t vocab = 0;
  std::vector<float> p;  // rows × vocab: the float model's next-token probabilities
  std::vector<double> p_log_p, p_sum;
  std::vector<double> row;  // per scored row of a window

  State(std::unique_ptr<DecoderModel> m, int threads, EvalWindows w)
      : model(std::move(m)), pool(threads), windows(std::move(w)) {}

  int64_t rows() const { return windows.count() * windows.scored_per_window(); }

  template <class Fn>
  void run(Fn&& on_window) {
    for (SwitchLinear* l : layers) l->cursor = 0;
    for (int64_t w = 0; w < windows.count(); ++w) on_window(w, runner->run(windows, w));
  }
};

KldProbe::KldProbe(std::shared_ptr<const Checkpoint> ckpt, std::vector<int32_t> tokens, int64_t ctx, int threads) {
  const std::filesystem::path model_dir = ckpt->dir();
  auto model = DecoderModel::load(std::move(ckpt));
  const int64_t vocab = model->config().vocab_size;
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= vocab)
      fail("calibration token #{} is id {}, outside the model's vocabulary of {}", i, tokens[i], vocab);
  s_ = std::make_unique<State>(std::move(model), threads, EvalWindows(std::move(tokens), ctx, 0, window_bos(model_dir)));
  State& s = *s_;
  s.vocab = vocab;
  s.model->for_each_linear([&](const std::string& prefix, std::unique_ptr<LinearMethod>& m) {
    auto sw = std::make_unique<SwitchLinear>(std::move(m));
    s.index[prefix] = s.order.size();
    s.order.push_back(prefix);
    s.layers.push_back(sw.get());
    m = std::move(sw);
  });
  for (const std::string& p : s.order) {
    const auto it = s.index.find(consumer_of(p));
    s.consumer.push_back(it == s.index.end() ? -1 : int64_t(it->second));
  }
  s.runner = std::make_unique<WindowRunner>(*s.model, s.pool, s.windows.ctx());

  // The float run: its distributions, and the residual-stream outputs later runs replay.
  for (size_t i = 0; i < s.order.size(); ++i)
    if (writes_residual(s.order[i])) s.layers[i]->mode = Mode::Record;
  const int64_t per = s.windows.scored_per_window();
  s.p.resize(size_t(s.rows() * vocab));
  s.p_log_p.resize(size_t(s.rows()));
  s.p_sum.resize(size_t(s.rows()));
  s.run([&](int64_t w, std::span<const float> logits) {
    s.pool.parallel_for(per, 1, [&](int64_t b, int64_t e, int) {
      std::vector<double> logp(static_cast<size_t>(vocab));
      for (int64_t r = b; r < e; ++r) {
        const int64_t row = w * per + r;
        log_softmax(logits.subspan(size_t(r * vocab), size_t(vocab)), logp);
        float* p = s.p.data() + row * vocab;
        double plp = 0, ps = 0;
        for (int64_t i = 0; i < vocab; ++i) {
          p[i] = float(std::exp(logp[size_t(i)]));
          plp += double(p[i]) * logp[size_t(i)];
          ps += double(p[i]);
        }
        s.p_log_p[size_t(row)] = plp;
        s.p_sum[size_t(row)] = ps;
      }
    });
  });
  for (SwitchLinear* l : s.layers) l->mode = Mode::Compute;
}

KldProbe::~KldProbe() = default;

int64_t KldProbe::scored_tokens() const { return s_->rows(); }

double KldProbe::kld(const std::map<std::string, const LinearMethod*>& swaps) {
  State& s = *s_;
  int64_t first = int64_t(s.order.size());
  for (const auto& [prefix, m] : swaps) {
    const auto it = s.index.find(prefix);
    if (it == s.index.end()) fail("scheme search: the model has no linear layer '{}'", prefix);
    first = std::min(first, int64_t(it->second));
    s.layers[it->second]->swap = m;
  }
  for (int64_t i = 0; i < int64_t(s.order.size()); ++i) {
    Mode m = Mode::Compute;
    if (i < first && writes_residual(s.order[size_t(i)]))
      m = Mode::Replay;
    else if (i < first && s.consumer[size_t(i)] >= 0 && s.consumer[size_t(i)] < first)
      m = Mode::Zero;
    s.layers[size_t(i)]->mode = m;
  }
  const int64_t per = s.windows.scored_per_window(), vocab = s.vocab;
  s.row.assign(size_t(per), 0.0);
  double total = 0;
  try {
    s.run([&](int64_t w, std::span<const float> logits) {
      s.pool.parallel_for(per, 1, [&](int64_t b, int64_t e, int) {
        for (int64_t r = b; r < e; ++r) {
          const int64_t row = w * per + r;
          s.row[size_t(r)] = row_kl(s.p.data() + row * vocab, s.p_log_p[size_t(row)], s.p_sum[size_t(row)],
                                    logits.data() + r * vocab, vocab);
        }
      });
      for (double v : s.row) total += v;
    });
  } catch (...) {
    for (SwitchLinear* l : s.layers) l->mode = Mode::Compute, l->swap = nullptr;
    throw;
  }
  for (SwitchLinear* l : s.layers) l->mode = Mode::Compute, l->swap = nullptr;
  ++passes_;
  return total / double(s.rows());
}

}  // namespace lowbit::quantize
