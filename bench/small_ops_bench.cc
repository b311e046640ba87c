// The small per-row kernels: every VecOps set this CPU runs (attention's dot/axpy/scale) and
// every activation quantizer act_quant_kernel_list() lists (per-token int8/int4, static int8,
// MX blocks, FP8 groups), at head_dim and hidden/intermediate lengths. Bytes counted: what each call reads and writes.
#include <fmt/format.h>

#include <memory>
#include <string>

#include "bench/bench_util.h"
#include "core/cpu_features.h"
#include "kernels/quantize_rows.h"
#include "kernels/vec_ops.h"

namespace lowbit::bench {

namespace {

// VecOps has no list in the registry: the sets it chooses from, each with the ISA it needs.
struct VecOpsEntry {
  const VecOps* ops;
  Isa isa;
};

std::vector<VecOpsEntry> vec_ops_sets(const CpuFeatures& cpu) {
  std::vector<VecOpsEntry> out;
  for (VecOpsEntry e : {VecOpsEntry{&kVecOpsAvx512, Isa::Avx512}, VecOpsEntry{&kVecOpsAvx2, Isa::Avx2},
                        VecOpsEntry{&kVecOpsRef, Isa::Scalar}})
    if (int(e.isa) <= int(cpu.max_isa())) out.push_back(e);
  return out;
}

}  // namespace

void register_small_ops() {
  const CpuFeatures& cpu = cpu_features();
  for (const VecOpsEntry& e : vec_ops_sets(cpu))
    for (int64_t n : {int64_t(128), int64_t(6144)}) {
      const VecOps* ops = e.ops;
      const std::string suffix = fmt::format("/n{}", n);
      auto data = [n] {
        auto v = std::make_shared<std::vector<float>>(size_t(2 * n));
        fill_uniform(v->data(), v->size(), -1.0f, 1.0f);
        return v;
      };
      add(std::string("vec_ops/") + ops->isa + "/dot" + suffix, [=](benchmark::State& st) {
        auto v = data();
        for (auto _ : st) benchmark::DoNotOptimize(ops->dot(v->data(), v->data() + n, n));
        set_throughput(st, 8.0 * double(n), 2.0 * double(n));
      });
      add(std::string("vec_ops/") + ops->isa + "/axpy" + suffix, [=](benchmark::State& st) {
        auto v = data();
        for (auto _ : st) {
          ops->axpy(1e-3f, v->data(), v->data() + n, n);
          benchmark::ClobberMemory();
        }
        set_throughput(st, 12.0 * double(n), 2.0 * double(n));
      });
      add(std::string("vec_ops/") + ops->isa + "/scale" + suffix, [=](benchmark::State& st) {
        auto v = data();
        for (auto _ : st) {
          ops->scale(1.0f, v->data(), n);
          benchmark::ClobberMemory();
        }
        set_throughput(st, 8.0 * double(n), double(n));
      });
    }

  for (const ActQuantKernels* k : act_quant_kernel_list(cpu))
    for (int64_t kdim : {int64_t(2048), int64_t(6144)})
      for (int64_t m : {kDecodeRows, kPrefillRows}) {
        const std::string suffix = fmt::format("/{}/m{}", kdim, m);
        struct Rows {
          std::vector<float> x, scale;
          std::vector<int8_t> q;
          std::vector<int32_t> sums;
          ActQuantRows rows;
        };
        auto data = [kdim, m] {
          auto r = std::make_shared<Rows>();
          r->x.resize(size_t(m * kdim));
          fill_uniform(r->x.data(), r->x.size(), -4.0f, 4.0f);
          r->q.resize(size_t(m * kdim));
          r->scale.resize(size_t(m));
          r->sums.resize(size_t(m * act_groups(kdim, 128)));
          r->rows = ActQuantRows{r->x.data(), kdim, m, kdim, r->q.data(), kdim, 128, r->sums.data()};
          return r;
        };
        // Reads m·k floats, writes m·k codes.
        const double bytes = 5.0 * double(m * kdim), ops = double(m * kdim);
        for (int bits : {8, 4})
          add(fmt::format("act_quant/{}/per_token_int{}{}", k->name, bits, suffix),
              [=](benchmark::State& st) {
                auto r = data();
                for (auto _ : st) {
                  k->per_token_sym(r->rows, bits, r->scale.data());
                  benchmark::ClobberMemory();
                }
                set_throughput(st, bytes, ops);
              });
        add(std::string("act_quant/") + k->name + "/static_int8" + suffix, [=](benchmark::State& st) {
          auto r = data();
          for (auto _ : st) {
            k->static_int8(r->rows, 0.03f, 0.0f, StaticActRule::DivZero);
            benchmark::ClobberMemory();
          }
          set_throughput(st, bytes, ops);
        });
        // The float-coded rows: MX blocks of 32 (E4M3 and E2M1 codes), FP8 per group of 128.
        for (bool fp4 : {false, true})
          add(fmt::format("act_quant/{}/mx_{}{}", k->name, fp4 ? "fp4" : "fp8", suffix), [=](benchmark::State& st) {
            auto r = data();
            std::vector<uint8_t> codes(size_t(m * kdim)), e8m0(size_t(m * kdim / 32));
            for (auto _ : st) {
              for (int64_t i = 0; i < m; ++i)
                k->mx_row(r->x.data() + i * kdim, kdim, fp4, codes.data() + i * kdim, e8m0.data() + i * kdim / 32);
              benchmark::ClobberMemory();
            }
            set_throughput(st, bytes, ops);
          });
        add(std::string("act_quant/") + k->name + "/fp8_group128" + suffix, [=](benchmark::State& st) {
          auto r = data();
          std::vector<uint8_t> codes(size_t(m * kdim));
          std::vector<float> scales(size_t(m * kdim / 128));
          for (auto _ : st) {
            for (int64_t i = 0; i < m; ++i)
              k->fp8_groups(r->x.data() + i * kdim, kdim, 128, codes.data() + i * kdim, scales.data() + i * kdim / 128);
            benchmark::ClobberMemory();
          }
          set_throughput(st, bytes, ops);
        });
      }
}

}  // namespace lowbit::bench
