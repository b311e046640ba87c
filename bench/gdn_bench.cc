// Gated DeltaNet kernels (kernels/gdn.h) of every backend gdn_kernel_sets() lists for this CPU,
// at Qwen3-Next-80B's shape (Hk 16, Hv 32, dk = dv = 128, Kc 4), through the driver the model
// uses (run_gdn_delta_rule / run_gdn_conv), LOWBIT_BENCH_THREADS threads:
//   gdn/<set>/decode/hot         one token of one sequence on one layer's state (2 MiB, cache-hot)
//   gdn/<set>/decode/layers36    the same, cycling over 36 layers' states (72 MiB, as a real
//                                decode step): bytes_per_s counts the state read + written
//                                (2 × 2 MiB per call); state_bw_vs_dram = that / the machine's
//                                streaming read bandwidth (kernels/roofline.h, measured once)
//   gdn/<set>/prefill2048/{chunked,recurrent}   2048 tokens of one sequence, each form
//   gdn/<set>/tokens<T>/{chunked,recurrent}     shorter chunks: where kAuto switches
//   gdn/<set>/conv/{decode,prefill2048}
// Registered at static initialisation (no edit to kernel_bench_main.cc needed).
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gdn_kernels.h"
#include "kernels/roofline.h"

namespace lowbit::bench {

namespace {

GdnShape shape_80b() {
  GdnShape s;
  s.num_k_heads = 16;
  s.num_v_heads = 32;
  s.k_dim = 128;
  s.v_dim = 128;
  s.conv_kernel = 4;
  return s;
}

ThreadPool& pool() {
  static ThreadPool p(bench_threads());
  return p;
}

// Streaming read bandwidth of this machine over 1 GiB (≫ caches), once per process.
double dram_read_bandwidth() {
  static const double bw = measure_read_bandwidth(pool(), cpu_features(), size_t(1) << 30, 2);
  return bw;
}

struct GdnData {
  GdnShape s = shape_80b();
  int64_t tokens, layers;
  std::vector<float> conv_in, conv_out, window, a, b, out, conv_weight, a_log, dt_bias;
  std::vector<std::vector<float>> states;

  GdnData(int64_t t, int64_t n_layers) : tokens(t), layers(n_layers) {
    const int64_t cd = s.conv_dim();
    auto fill = [](std::vector<float>& v, size_t n, float lo, float hi) {
      v.resize(n);
      fill_uniform(v.data(), n, lo, hi);
    };
    fill(conv_in, size_t(t * cd), -1, 1);
    fill(conv_out, size_t(t * cd), -1, 1);
    fill(window, size_t(s.conv_state_floats()), -1, 1);
    fill(a, size_t(t * s.num_v_heads), -3, 3);
    fill(b, size_t(t * s.num_v_heads), -3, 3);
    fill(conv_weight, size_t(cd * s.conv_kernel), -0.5f, 0.5f);
    fill(a_log, size_t(s.num_v_heads), -1, 1);
    fill(dt_bias, size_t(s.num_v_heads), -1, 1);
    out.assign(size_t(t * s.value_dim()), 0.0f);
    states.resize(size_t(n_layers));
    for (auto& st : states) fill(st, size_t(s.state_floats()), -0.5f, 0.5f);
  }
  GdnWeights weights() const { return {conv_weight.data(), a_log.data(), dt_bias.data()}; }
  GdnSequence seq(int64_t layer) {
    GdnSequence q;
    q.n_tokens = tokens;
    q.conv_in = conv_in.data();
    q.conv_in_stride = s.conv_dim();
    q.conv_out = conv_out.data();
    q.conv_state = window.data();
    q.a = a.data();
    q.b = b.data();
    q.ab_stride = s.num_v_heads;
    q.state = states[size_t(layer)].data();
    q.out = out.data();
    q.out_stride = s.value_dim();
    return q;
  }
};

double state_bytes() { return double(shape_80b().state_floats()) * 4.0; }

void delta(const GdnKernels& k, GdnData& d, int64_t layer, GdnMode mode) {
  const GdnSequence q = d.seq(layer);
  run_gdn_delta_rule(k, d.s, d.weights(), std::span<const GdnSequence>(&q, 1), pool(), mode);
}

void register_gdn() {
  for (const GdnKernels* k : gdn_kernel_sets(cpu_features())) {
    const std::string base = std::string("gdn/") + k->name;
    add(base + "/decode/hot", [=](benchmark::State& st) {
      auto d = std::make_shared<GdnData>(1, 1);
      for (auto _ : st) delta(*k, *d, 0, GdnMode::kAuto);
      set_throughput(st, 2 * state_bytes(), 0);
    });
    add(base + "/decode/layers36", [=](benchmark::State& st) {
      auto d = std::make_shared<GdnData>(1, 36);
      int64_t layer = 0;
      for (auto _ : st) {
        delta(*k, *d, layer, GdnMode::kAuto);
        layer = (layer + 1) % d->layers;
      }
      set_throughput(st, 2 * state_bytes(), 0);
      st.counters["state_bw_vs_dram"] =
          benchmark::Counter(2 * state_bytes() / dram_read_bandwidth(), benchmark::Counter::kIsIterationInvariantRate);
    });
    for (int64_t t : {int64_t(8), int64_t(16), int64_t(32), int64_t(64), int64_t(128), int64_t(256), int64_t(2048)})
      for (GdnMode mode : {GdnMode::kChunked, GdnMode::kRecurrent}) {
        const std::string form = mode == GdnMode::kChunked ? "chunked" : "recurrent";
        const std::string what = t == 2048 ? "/prefill2048/" : "/tokens" + std::to_string(t) + "/";
        add(base + what + form, [=](benchmark::State& st) {
          auto d = std::make_shared<GdnData>(t, 1);
          for (auto _ : st) delta(*k, *d, 0, mode);
          st.counters["tokens_per_s"] = benchmark::Counter(double(t), benchmark::Counter::kIsIterationInvariantRate);
        });
      }
    for (int64_t t : {int64_t(1), int64_t(2048)})
      add(base + (t == 1 ? "/conv/decode" : "/conv/prefill2048"), [=](benchmark::State& st) {
        auto d = std::make_shared<GdnData>(t, 1);
        for (auto _ : st) {
          const GdnSequence q = d->seq(0);
          run_gdn_conv(*k, d->s, d->weights(), std::span<const GdnSequence>(&q, 1), pool());
        }
        st.counters["tokens_per_s"] = benchmark::Counter(double(t), benchmark::Counter::kIsIterationInvariantRate);
      });
  }
}

[[maybe_unused]] const bool registered = (register_gdn(), true);

}  // namespace

}  // namespace lowbit::bench
