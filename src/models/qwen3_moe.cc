// Qwen3-MoE (Qwen3MoeForCausalLM): Qwen3's decoder (q_norm/k_norm before RoPE) whose FFN, in
// the layers ModelConfig::is_moe_layer picks, is a routed mixture of SwiGLU experts
// (../shared/spec/qwen3-moe-next.md §1). This file registers the traits and loads one layer's
// experts from either layout on disk:
//   per expert   mlp.experts.{e}.{gate,up,down}_proj.*   (released checkpoints, msmodelslim
//                                                         under transformers 4.57, any scheme)
//   fused        mlp.experts.gate_up_proj [E, 2F, H]     (transformers 5 modules; float)
//                mlp.experts.down_proj    [E, H, F]
// Loading streams expert by expert: each expert's source pages are read, turned into its
// LinearMethod and (unless the method reads them in place) released before the next, so the
// checkpoint is never resident twice.
#include <cstring>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/format.h"
#include "models/arch.h"
#include "schemes/make_linear.h"

namespace lowbit {

namespace {

bool is_float(DType d) { return d == DType::BF16 || d == DType::F16 || d == DType::F32; }

// make_linear, with the checkpoint file named in errors (schemes name the layer and tensor).
std::unique_ptr<LinearMethod> build(const Checkpoint& ckpt, const SchemeSpec& spec, const LinearTensors& t,
                                    LinearShape shape, const CpuFeatures& cpu, const std::string& source_tensor) {
  try {
    return make_linear(spec, t, shape, cpu);
  } catch (const Error& e) {
    if (!ckpt.has(source_tensor)) throw;
    fail("{}: {}", (ckpt.dir() / ckpt.file_of(source_tensor)).string(), e.what());
  }
}

// A [rows, cols] slice of a [E, rows, cols] tensor, starting at expert e.
TensorView expert_slice(const TensorView& all, int64_t e, const std::string& name) {
  const size_t bytes = size_t(all.dim(1) * all.dim(2)) * dtype_size(all.dtype);
  return TensorView{
      name, all.dtype, {all.dim(1), all.dim(2)}, static_cast<const uint8_t*>(all.data) + size_t(e) * bytes};
}

// transformers 5's fused expert parameters, float only (no format quantizes them).
std::vector<ExpertLinears> load_fused_layout(const Checkpoint& ckpt, const Format& format, const std::string& p,
                                             int64_t E, int64_t H, int64_t F, const CpuFeatures& cpu) {
  const std::string gu_name = p + "experts.gate_up_proj", down_name = p + "experts.down_proj";
  if (!ckpt.has(down_name))
    fail("{}: tensor '{}' not found (the layer has '{}')", ckpt.dir().string(), down_name, gu_name);
  const TensorView gu = ckpt.get(gu_name, {DType::BF16, DType::F16, DType::F32}, {E, 2 * F, H});
  const TensorView down = ckpt.get(down_name, {DType::BF16, DType::F16, DType::F32}, {E, H, F});
  const SchemeSpec spec = format.spec_for(gu_name);
  const SchemeSpec down_spec = format.spec_for(down_name);
  // Expert e's slice of a fused tensor, as its own LinearMethod.
  auto slice = [&](const TensorView& all, const std::string& name, const SchemeSpec& sp, int64_t e, LinearShape shape) {
    const TensorView view = expert_slice(all, e, name + "[" + std::to_string(e) + "]");
    prefault(view.data, view.nbytes());
    auto method = build(ckpt, sp, LinearTensors{view.name, view, std::nullopt, {}, nullptr}, shape, cpu, name);
    if (!method->reads_checkpoint_in_place()) release_pages(view.data, view.nbytes());
    return method;
  };
  std::vector<ExpertLinears> experts(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    experts[size_t(e)].gate_up = slice(gu, gu_name, spec, e, {H, 2 * F});
    experts[size_t(e)].down = slice(down, down_name, down_spec, e, {F, H});
  }
  return experts;
}

// Per-expert modules through the checkpoint's Format (any scheme). Gate and up become one
// [2F, H] matrix when both are plain weights of one dtype (float checkpoints, and online
// quantization of them): float ones are copied into `storage` (one [E, 2F, H] buffer,
// allocated once) and read there in place; quantized ones are concatenated in a one-expert
// scratch that the scheme repacks from. Pre-quantized gate and up keep their own scales and
// stay two matrices.
std::vector<ExpertLinears> load_per_expert_layout(const Checkpoint& ckpt, const Format& format, const std::string& p,
                                                  int64_t E, int64_t H, int64_t F, const CpuFeatures& cpu,
                                                  std::shared_ptr<void>& storage) {
  std::vector<std::string> prefixes;
  for (int64_t e = 0; e < E; ++e)
    for (const char* proj : {"gate_proj", "up_proj", "down_proj"})
      prefixes.push_back(p + "experts." + std::to_string(e) + "." + proj);
  format.check_fused(prefixes);  // every projection of every expert: one scheme

  std::vector<ExpertLinears> experts(static_cast<size_t>(E));
  std::vector<uint8_t> scratch;
  uint8_t* packed = nullptr;  // float storage [E, 2F, H]
  for (int64_t e = 0; e < E; ++e) {
    const std::string &gp = prefixes[size_t(3 * e)], &up = prefixes[size_t(3 * e + 1)],
                      &dp = prefixes[size_t(3 * e + 2)];
    const SchemeSpec spec = format.spec_for(gp);
    LinearTensors g = format.tensors_for(gp, false), u = format.tensors_for(up, false),
                  d = format.tensors_for(dp, false);
    ExpertLinears& x = experts[size_t(e)];

    const bool fusable = g.extra.empty() && u.extra.empty() && g.weight.dtype == u.weight.dtype &&
                         g.weight.shape == std::vector<int64_t>{F, H} && u.weight.shape == g.weight.shape &&
                         (spec.kind != SchemeKind::Float || is_float(g.weight.dtype));
    if (fusable) {
      const size_t half = g.weight.nbytes(), whole = 2 * half;
      uint8_t* dst;
      if (spec.kind == SchemeKind::Float) {
        if (!packed) {
          auto buf = std::shared_ptr<uint8_t[]>(new uint8_t[size_t(E) * whole]);
          packed = buf.get();
          storage = buf;
        }
        dst = packed + size_t(e) * whole;
      } else {
        scratch.resize(whole);
        dst = scratch.data();
      }
      std::memcpy(dst, g.weight.data, half);
      std::memcpy(dst + half, u.weight.data, half);
      release_pages(g.weight.data, half);
      release_pages(u.weight.data, half);
      LinearTensors gu{p + "experts." + std::to_string(e) + ".gate_up_proj (gate_proj | up_proj)",
                       TensorView{g.weight.name + " | up_proj", g.weight.dtype, {2 * F, H}, dst},
                       std::nullopt,
                       {},
                       // Float: owned by `storage`, so FloatLinear reads it in place rather than copying it again.
                       spec.kind == SchemeKind::Float ? storage : nullptr};
      x.gate_up = build(ckpt, spec, gu, {H, 2 * F}, cpu, g.weight.name);
    } else {
      for (auto [t, out] : {std::pair{&g, &x.gate}, std::pair{&u, &x.up}}) {
        prefault(t->weight.data, t->weight.nbytes());
        *out = build(ckpt, spec, *t, {H, F}, cpu, t->weight.name);
        if (!(*out)->reads_checkpoint_in_place()) release_pages(t->weight.data, t->weight.nbytes());
      }
    }
    prefault(d.weight.data, d.weight.nbytes());
    x.down = build(ckpt, format.spec_for(dp), d, {F, H}, cpu, d.weight.name);
    if (!x.down->reads_checkpoint_in_place()) release_pages(d.weight.data, d.weight.nbytes());
  }
  return experts;
}

}  // namespace

// Shared with Qwen3-Next, whose routed experts have the same names and layouts.
std::unique_ptr<MoeMethod> load_qwen3_moe_experts(const Checkpoint& ckpt, const Format& format,
                                                  const std::string& mlp_prefix, const ModelConfig& config,
                                                  const CpuFeatures& cpu) {
  const MoeConfig& m = config.moe;
  const int64_t E = m.num_experts, H = config.hidden_size, F = m.moe_intermediate_size;
  const bool fused = ckpt.has(mlp_prefix + "experts.gate_up_proj");
  if (fused && ckpt.has(mlp_prefix + "experts.0.gate_proj.weight"))
    fail("{}: layer '{}' has both fused 'experts.gate_up_proj' and per-expert 'experts.0.gate_proj.weight'",
         ckpt.dir().string(), mlp_prefix);
  std::shared_ptr<void> storage;
  std::vector<ExpertLinears> experts = fused ? load_fused_layout(ckpt, format, mlp_prefix, E, H, F, cpu)
                                             : load_per_expert_layout(ckpt, format, mlp_prefix, E, H, F, cpu, storage);
  MoeRouting routing{E, m.num_experts_per_tok, m.norm_topk_prob};
  return make_routed_experts(mlp_prefix + "experts", routing, std::move(experts), std::move(storage));
}

const ArchTraits& qwen3_moe_traits() {
  static const ArchTraits traits{
      .hf_name = "Qwen3MoeForCausalLM", .qk_norm = true, .load_moe_experts = &load_qwen3_moe_experts};
  return traits;
}

}  // namespace lowbit
