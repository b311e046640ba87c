// Test-only driver for tests/python/test_gdn_oracle.py: runs one sequence through lowbit's
// Gated DeltaNet kernels (kernels/gdn.h) on raw little-endian fp32 files in a directory, so the
// Python side can compare with transformers' torch_chunk_gated_delta_rule /
// torch_recurrent_gated_delta_rule and a torch conv1d.
//   gdn_tool conv  DIR HK HV DK DV KC T [KERNELS]
//     reads  conv_in [T, conv_dim], window [KC−1, conv_dim], conv_weight [conv_dim, KC]
//     writes conv_out [T, conv_dim], window_out [KC−1, conv_dim]
//   gdn_tool delta DIR HK HV DK DV T recurrent|chunked|auto [KERNELS]
//     reads  conv_out [T, conv_dim] (q | k | v rows), a [T, HV], b [T, HV], a_log [HV],
//            dt_bias [HV], state [HV, DK, DV]
//     writes out [T, HV·DV], state_out [HV, DK, DV]
// KERNELS names a backend (gdn_avx512, gdn_avx2, gdn_portable; default: the fastest this CPU
// runs). Files are DIR/NAME.f32. Errors go to stderr with exit status 1.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/gdn_kernels.h"

namespace lowbit {
namespace {

std::vector<float> read_f32(const std::string& dir, const char* name, int64_t count) {
  const std::string path = dir + "/" + name + ".f32";
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("gdn_tool: cannot open {}", path);
  std::vector<float> v(static_cast<size_t>(count));
  const size_t got = count > 0 ? std::fread(v.data(), sizeof(float), v.size(), f) : 0;
  const bool extra = std::fgetc(f) != EOF;
  std::fclose(f);
  if (got != v.size() || extra) fail("gdn_tool: {} must hold exactly {} floats", path, count);
  return v;
}

void write_f32(const std::string& dir, const char* name, const std::vector<float>& v) {
  const std::string path = dir + "/" + name + ".f32";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(v.data(), sizeof(float), v.size(), f) != v.size()) fail("gdn_tool: cannot write {}", path);
  std::fclose(f);
}

int64_t arg(char** argv, int i) { return std::strtoll(argv[i], nullptr, 10); }

const GdnKernels& pick(int argc, char** argv, int at) {
  const auto sets = gdn_kernel_sets(cpu_features());
  if (argc <= at) return *sets.front();
  for (const GdnKernels* k : sets)
    if (std::string(k->name) == argv[at]) return *k;
  fail("gdn_tool: backend {} is not one this CPU runs", argv[at]);
}

int run(int argc, char** argv) {
  const std::string op = argc > 1 ? argv[1] : "";
  if (!((op == "conv" && argc >= 9) || (op == "delta" && argc >= 9)))
    fail("usage: gdn_tool conv DIR HK HV DK DV KC T [KERNELS] | delta DIR HK HV DK DV T MODE [KERNELS]");
  const std::string dir = argv[2];
  GdnShape s;
  s.num_k_heads = arg(argv, 3);
  s.num_v_heads = arg(argv, 4);
  s.k_dim = arg(argv, 5);
  s.v_dim = arg(argv, 6);
  ThreadPool pool(2);
  const int64_t cd = s.conv_dim();
  if (op == "conv") {
    s.conv_kernel = arg(argv, 7);
    const int64_t t = arg(argv, 8);
    const std::vector<float> in = read_f32(dir, "conv_in", t * cd),
                             weight = read_f32(dir, "conv_weight", cd * s.conv_kernel);
    std::vector<float> window = read_f32(dir, "window", s.conv_state_floats()), out(size_t(t * cd));
    GdnSequence q;
    q.n_tokens = t;
    q.conv_in = in.data();
    q.conv_in_stride = cd;
    q.conv_out = out.data();
    q.conv_state = window.data();
    const GdnWeights w{weight.data(), nullptr, nullptr};
    run_gdn_conv(pick(argc, argv, 9), s, w, std::span<const GdnSequence>(&q, 1), pool);
    write_f32(dir, "conv_out", out);
    write_f32(dir, "window_out", window);
    return 0;
  }
  const int64_t t = arg(argv, 7), hv = s.num_v_heads;
  const std::string mode_name = argv[8];
  const GdnMode mode = mode_name == "recurrent" ? GdnMode::kRecurrent
                       : mode_name == "chunked" ? GdnMode::kChunked
                       : mode_name == "auto"
                           ? GdnMode::kAuto
                           : (fail("gdn_tool: mode {} (recurrent, chunked, auto)", mode_name), GdnMode::kAuto);
  const std::vector<float> rows = read_f32(dir, "conv_out", t * cd), a = read_f32(dir, "a", t * hv),
                           b = read_f32(dir, "b", t * hv), a_log = read_f32(dir, "a_log", hv),
                           dt_bias = read_f32(dir, "dt_bias", hv);
  std::vector<float> state = read_f32(dir, "state", s.state_floats()), out(size_t(t * s.value_dim()));
  GdnSequence q;
  q.n_tokens = t;
  q.conv_out = const_cast<float*>(rows.data());
  q.a = a.data();
  q.b = b.data();
  q.ab_stride = hv;
  q.state = state.data();
  q.out = out.data();
  q.out_stride = s.value_dim();
  const GdnWeights w{nullptr, a_log.data(), dt_bias.data()};
  run_gdn_delta_rule(pick(argc, argv, 9), s, w, std::span<const GdnSequence>(&q, 1), pool, mode);
  write_f32(dir, "out", out);
  write_f32(dir, "state_out", state);
  return 0;
}

}  // namespace
}  // namespace lowbit

int main(int argc, char** argv) {
  try {
    return lowbit::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
