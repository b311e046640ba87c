// Every quantized GEMM set quant_gemm_kernels() lists for this CPU: int_gemm (and its *_large
// prefill entry) for the integer schemes, code_gemm (and *_large) for the table-decoded ones,
// at Qwen3-1.7B's shapes, decode and prefill rows. Bytes counted: packed weight codes plus
// their scales (what a decode step must stream); operations: 2·m·n·k.
#include <algorithm>
#include <memory>

#include "bench/bench_util.h"
#include "core/cpu_features.h"
#include "core/runtime_options.h"
#include "core/thread_pool.h"
#include "kernels/quant_gemm.h"
#include "schemes/scheme_util.h"

namespace lowbit::bench {

namespace {

using schemes::CodeTable;
using schemes::code_table;

ThreadPool& pool() {
  static ThreadPool p(bench_threads());
  return p;
}

// Integer-weight configurations the schemes use.
struct IntConfig {
  const char* name;
  int bits;
  int64_t group;  // 0: per channel
};
constexpr IntConfig kIntConfigs[] = {
    {"w8_channel", 8, 0},  // W8A8
    {"w4_channel", 4, 0},  // W4A8, W4A4
    {"w4_g128", 4, 128},   // W4A16 with int8 activations
};

// Table-decoded configurations: weight table, activation table (none: fp32 x), group.
struct CodeConfig {
  const char* name;
  int bits;
  CodeTable weights;
  bool coded_x;
  CodeTable x_table;
  int x_bits;
  int64_t group;
  bool e8m0;
};
constexpr CodeConfig kCodeConfigs[] = {
    {"mxfp8", 8, CodeTable::Fp8E4M3, true, CodeTable::Fp8E4M3, 8, 32, true},
    {"mxfp4", 4, CodeTable::Fp4E2M1, true, CodeTable::Fp4E2M1, 4, 32, true},
    {"w4a8_mxfp", 4, CodeTable::Fp4E2M1, true, CodeTable::Fp8E4M3, 8, 32, true},
    {"w4a16_float", 4, CodeTable::Int4Signed, false, CodeTable::Int4Signed, 8, 128, false},
    {"fp8_channel", 8, CodeTable::Fp8E4M3, false, CodeTable::Fp8E4M3, 8, 0, false},
};

int64_t groups_of(int64_t k_pad, int64_t group) { return group ? (k_pad + group - 1) / group : 1; }

// Random codes; E4M3's NaN codes (0x7F, 0xFF) are avoided so no kernel takes a slow path.
PackedCodes random_codes(int bits, int64_t n, int64_t k) {
  PackedCodes w(bits, n, k);
  std::vector<uint8_t> row(static_cast<size_t>(k));
  for (int64_t r = 0; r < n; ++r) {
    fill_int(row.data(), row.size(), 0, bits == 8 ? 254 : 15);
    if (bits == 8)
      for (auto& c : row)
        if ((c & 0x7F) == 0x7F) c = 0x3F;
    w.set_row(r, row.data());
  }
  return w;
}

TiledParams random_params(int64_t n, int64_t groups, float lo, float hi) {
  TiledParams p(n, groups);
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t g = 0; g < groups; ++g) p.set(r, g, d(rng()));
  return p;
}

struct IntData {
  PackedCodes w;
  TiledParams group_scale;
  AlignedArray<float> col_scale;
  std::vector<int8_t> xq;
  std::vector<int32_t> row_group_sum;
  std::vector<float> row_scale, y;
  IntGemmArgs args;
  double weight_bytes = 0;
};

std::shared_ptr<IntData> make_int_data(const IntConfig& c, const GemmShape& s, int64_t m) {
  auto d = std::make_shared<IntData>();
  d->w = random_codes(c.bits, s.n, s.k);
  const int64_t kp = d->w.k_pad(), groups = groups_of(kp, c.group);
  if (c.group) d->group_scale = random_params(s.n, groups, 0.001f, 0.01f);
  d->col_scale = padded_row_vector(s.n);
  fill_uniform(d->col_scale.data(), size_t(s.n), 0.5f, 1.5f);
  d->xq.assign(size_t(m * kp), 0);
  d->row_group_sum.assign(size_t(m * groups), 0);
  for (int64_t i = 0; i < m; ++i) {
    fill_int(d->xq.data() + i * kp, size_t(s.k), -127, 127);
    const int64_t g_len = c.group ? c.group : kp;
    for (int64_t k = 0; k < kp; ++k) d->row_group_sum[size_t(i * groups + k / g_len)] += d->xq[size_t(i * kp + k)];
  }
  d->row_scale.assign(size_t(m), 0.01f);
  d->y.assign(size_t(m * s.n), 0.0f);
  IntGemmArgs& a = d->args;
  a.xq = d->xq.data();
  a.ldxq = kp;
  a.m = m;
  a.w = &d->w;
  a.group = c.group;
  a.group_scale = c.group ? &d->group_scale : nullptr;
  a.row_group_sum = d->row_group_sum.data();
  a.row_scale = d->row_scale.data();
  a.col_scale = d->col_scale.data();
  a.y = d->y.data();
  a.ldy = s.n;
  d->weight_bytes = double(d->w.bytes() + d->group_scale.bytes() + size_t(s.n) * sizeof(float));
  return d;
}

struct CodeData {
  PackedCodes w;
  TiledParams scale;
  std::vector<uint8_t> e8m0, xq;
  std::vector<float> x, x_scale, y;
  CodeGemmArgs args;
  double weight_bytes = 0;
};

std::shared_ptr<CodeData> make_code_data(const CodeConfig& c, const GemmShape& s, int64_t m) {
  auto d = std::make_shared<CodeData>();
  d->w = random_codes(c.bits, s.n, s.k);
  const int64_t kp = d->w.k_pad(), groups = groups_of(kp, c.group), n_pad = d->w.n_pad();
  CodeGemmArgs& a = d->args;
  if (c.e8m0) {
    d->e8m0.resize(size_t(n_pad * groups));
    fill_int(d->e8m0.data(), d->e8m0.size(), 120, 130);
    a.scale_e8m0 = d->e8m0.data();
  } else {
    d->scale = random_params(s.n, groups, 0.001f, 0.01f);
    a.scale = &d->scale;
  }
  if (c.coded_x) {
    d->xq.assign(size_t(m * kp), 0);
    for (int64_t i = 0; i < m; ++i) {
      uint8_t* row = d->xq.data() + i * kp;
      fill_int(row, size_t(s.k), 0, c.x_bits == 8 ? 254 : 15);
      if (c.x_bits == 8)
        for (int64_t k = 0; k < s.k; ++k)
          if ((row[k] & 0x7F) == 0x7F) row[k] = 0x3F;
    }
    d->x_scale.assign(size_t(m * groups), 0.0625f);
    a.xq = d->xq.data();
    a.x_lut = code_table(c.x_table);
    a.x_bits = c.x_bits;
    a.x_scale = d->x_scale.data();
    a.ldxs = groups;
  } else {
    d->x.assign(size_t(m * kp), 0.0f);
    for (int64_t i = 0; i < m; ++i) fill_uniform(d->x.data() + i * kp, size_t(s.k), -1.0f, 1.0f);
    a.x = d->x.data();
    a.x_bf16_ok = runtime_options().float_activations != "f32";
  }
  d->y.assign(size_t(m * s.n), 0.0f);
  a.ldx = kp;
  a.m = m;
  a.w = &d->w;
  a.lut = code_table(c.weights);
  a.group = c.group;
  a.y = d->y.data();
  a.ldy = s.n;
  d->weight_bytes = double(d->w.bytes() + d->scale.bytes() + d->e8m0.size());
  return d;
}

// One data set alive at a time (benchmarks run in registration order, and every kernel set of
// a (config, shape, m) runs back to back), so memory stays at one problem's size.
template <class Data, class Make>
std::shared_ptr<Data> cached(const std::string& key, Make make) {
  static std::string current;
  static std::shared_ptr<Data> data;
  if (key != current) {
    data.reset();
    data = make();
    current = key;
  }
  return data;
}

// Each run is a new call (as PackedLinear::run): code_gemm prepares x once per thread per call.
void run_tiles(CodeGemmFn fn, CodeGemmArgs a, int64_t tiles) {
  a.call_id = next_code_gemm_call_id();
  pool().parallel_for(tiles, 1, [&](int64_t t0, int64_t t1, int) { fn(a, t0, t1); });
}
void run_tiles(IntGemmFn fn, const IntGemmArgs& a, int64_t tiles) {
  pool().parallel_for(tiles, 1, [&](int64_t t0, int64_t t1, int) { fn(a, t0, t1); });
}

std::string unique_name(const QuantGemmKernels& k, std::vector<std::string>& seen) {
  std::string name = k.name;
  const auto n = std::count(seen.begin(), seen.end(), name);
  seen.push_back(name);
  return n ? name + "#" + std::to_string(n + 1) : name;
}

}  // namespace

void register_quant_gemm() {
  const auto sets = quant_gemm_kernels(cpu_features());
  // Shape outermost, then config and m, then kernel set: the cached data is reused by every set.
  for (const GemmShape& s : qwen3_shapes())
    for (int64_t m : {kDecodeRows, kBatchDecodeRows, kPrefillRows}) {
      for (const IntConfig& c : kIntConfigs) {
        const std::string key = std::string("int/") + c.name + "/" + shape_name(s, m);
        std::vector<std::string> seen;
        for (const QuantGemmKernels* k : sets) {
          const std::string set = unique_name(*k, seen);
          const IntConfig cfg = c;
          auto bench = [=](IntGemmFn fn) {
            return [=](benchmark::State& st) {
              auto d = cached<IntData>(key, [&] { return make_int_data(cfg, s, m); });
              const int64_t tiles = d->w.n_pad() / kTileN;
              for (auto _ : st) run_tiles(fn, d->args, tiles);
              set_throughput(st, d->weight_bytes, 2.0 * double(m) * double(s.n) * double(s.k));
            };
          };
          add("quant/" + set + "/int_gemm/" + c.name + "/" + shape_name(s, m), bench(k->int_gemm));
          if (k->int_gemm_large && m >= k->large_rows)
            add("quant/" + set + "/int_gemm_large/" + c.name + "/" + shape_name(s, m), bench(k->int_gemm_large));
        }
      }
      for (const CodeConfig& c : kCodeConfigs) {
        const std::string key = std::string("code/") + c.name + "/" + shape_name(s, m);
        std::vector<std::string> seen;
        for (const QuantGemmKernels* k : sets) {
          const std::string set = unique_name(*k, seen);
          const CodeConfig cfg = c;
          auto bench = [=](CodeGemmFn fn) {
            return [=](benchmark::State& st) {
              auto d = cached<CodeData>(key, [&] { return make_code_data(cfg, s, m); });
              const int64_t tiles = d->w.n_pad() / kTileN;
              for (auto _ : st) run_tiles(fn, d->args, tiles);
              set_throughput(st, d->weight_bytes, 2.0 * double(m) * double(s.n) * double(s.k));
            };
          };
          add("quant/" + set + "/code_gemm/" + c.name + "/" + shape_name(s, m), bench(k->code_gemm));
          if (k->code_gemm_large && m >= k->large_rows)
            add("quant/" + set + "/code_gemm_large/" + c.name + "/" + shape_name(s, m), bench(k->code_gemm_large));
        }
      }
    }
}

}  // namespace lowbit::bench
