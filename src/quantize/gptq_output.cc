#include "quantize/gptq_output.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/int4_packing.h"
#include "io/json_util.h"

namespace lowbit::quantize {

namespace fs = std::filesystem;

QuantizedLinear write_gptq_layer(const FormatWriter& writer, const LinearInput& in, const GptqResult& r,
                                 int64_t& mismatches) {
  QuantizedLinear q = writer.quantize(in);
  const int64_t n = r.n, k = r.k;
  const bool gidx = !r.perm.empty();
  // The writer's dequantized weights are in its (writer_w) column order.
  mismatches = 0;
  for (int64_t row = 0; row < n; ++row)
    for (int64_t c = 0; c < k; ++c) {
      const int64_t orig = gidx ? r.perm[size_t(c)] : c;
      if (q.dequant[size_t(row * k + c)] != r.dequant[size_t(row * k + orig)]) ++mismatches;
    }
  if (!gidx) return q;

  const std::string& p = in.plan->layer.prefix;
  const int64_t gs = in.plan->group_size;
  // Codes back in checkpoint column order; g_idx[c] = group of input column c.
  std::vector<int8_t> codes(size_t(n * k));
  std::vector<int32_t> g_idx(static_cast<size_t>(k));
  for (int64_t c = 0; c < k; ++c) g_idx[size_t(r.perm[size_t(c)])] = int32_t(c / gs);
  for (int64_t row = 0; row < n; ++row)
    for (int64_t c = 0; c < k; ++c) codes[size_t(row * k + r.perm[size_t(c)])] = r.q[size_t(row * k + c)];
  bool found = false;
  for (OutTensor& t : q.tensors)
    if (t.decl.name == p + ".weight_packed") {
      t = make_out(p + ".weight_packed", DType::I32, {n, (k + 7) / 8}, pack_int4_int32_k(codes.data(), n, k));
      found = true;
    }
  if (!found) fail("{}: act-order with g_idx needs a packed W4A16 compressed-tensors layer", p);
  q.tensors.push_back(make_out(p + ".weight_g_idx", DType::I32, {k}, g_idx));
  q.dequant = r.dequant;
  LayerGemm inner = q.gemm;
  std::vector<int32_t> perm = r.perm;
  q.gemm = [inner, perm, k](const float* x, int64_t m, float* y) {
    std::vector<float> xp(size_t(m * k));  // activations in the writer's (permuted) order
    for (int64_t i = 0; i < m; ++i)
      for (int64_t c = 0; c < k; ++c) xp[size_t(i * k + c)] = x[i * k + perm[size_t(c)]];
    inner(xp.data(), m, y);
  };
  return q;
}

TensorDecl g_idx_decl(const LayerPlan& l) { return {l.layer.prefix + ".weight_g_idx", DType::I32, {l.layer.in_features}}; }

void mark_actorder_group(const fs::path& config_json) {
  nlohmann::ordered_json cfg = nlohmann::ordered_json::parse(read_text_file(config_json));
  for (auto& [name, group] : cfg["quantization_config"]["config_groups"].items()) {
    auto& w = group["weights"];
    if (w.is_object() && w.value("strategy", "") == "group") w["actorder"] = "group";
  }
  write_json_file(config_json, cfg);
}

namespace {

template <class T>
void write_raw(const fs::path& path, const std::vector<T>& v) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
  if (!out) fail("--gptq-dump: cannot write {}", path.string());
}

const char* rule_name(IntGrid::Rule r) {
  switch (r) {
    case IntGrid::Rule::CtSym: return "ct_sym";
    case IntGrid::Rule::CtAsym: return "ct_asym";
    case IntGrid::Rule::QMaxSym: return "qmax_sym";
    case IntGrid::Rule::Awq: return "awq";
  }
  return "?";
}

const char* compute_name(ComputeDType c) {
  return c == ComputeDType::BF16 ? "bfloat16" : c == ComputeDType::F16 ? "float16" : "float32";
}

}  // namespace

nlohmann::ordered_json dump_gptq_layer(const fs::path& dir, const LayerPlan& l, const IntGrid& grid,
                                       const GptqOptions& o, const std::vector<float>& w, const std::vector<double>& h,
                                       const GptqResult& r) {
  fs::create_directories(dir);
  const std::string base = l.layer.prefix;
  write_raw(dir / (base + ".w.f32"), w);
  write_raw(dir / (base + ".h.f64"), h);
  write_raw(dir / (base + ".q.i8"), r.q);
  write_raw(dir / (base + ".scale.f32"), r.scale);
  write_raw(dir / (base + ".zero.f32"), r.zero);
  write_raw(dir / (base + ".deq.f32"), r.dequant);
  if (!r.perm.empty()) write_raw(dir / (base + ".perm.i32"), r.perm);
  nlohmann::ordered_json j = {{"name", base},
                              {"n", r.n},
                              {"k", r.k},
                              {"rule", rule_name(grid.rule)},
                              {"bits", grid.bits},
                              {"group_size", grid.group_size},
                              {"compute", compute_name(grid.compute)},
                              {"damp", o.damp},
                              {"block", o.block},
                              {"act_order", o.act_order == ActOrder::None    ? "none"
                                            : o.act_order == ActOrder::Group ? "group"
                                                                             : "static"},
                              {"static_groups", o.static_groups},
                              {"scale_search", o.scale_search},
                              {"loss", r.loss},
                              {"forced", r.forced},
                              {"dead_columns", r.dead_columns},
                              {"has_perm", !r.perm.empty()}};
  return j;
}

void write_gptq_dump_index(const fs::path& dir, const nlohmann::ordered_json& entries) {
  fs::create_directories(dir);
  std::ofstream out(dir / "index.json");
  out << entries.dump(2) << "\n";
  if (!out) fail("--gptq-dump: cannot write {}", (dir / "index.json").string());
}

}  // namespace lowbit::quantize
