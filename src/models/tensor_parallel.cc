#include "models/tensor_parallel.h"

#include <chrono>
#include <numeric>

#include "core/error.h"
#include "formats/format.h"

namespace lowbit {

namespace {
bool ends_with(const std::string& s, std::string_view tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

int64_t lcm_units(std::initializer_list<int64_t> units) {
  int64_t l = 1;
  for (int64_t u : units) l = std::lcm(l, std::max<int64_t>(1, u));
  return l;
}

// Boundary multiples every layer's scheme needs, over all layers (one split for the model).
dist::TpDims tp_dims(const ModelConfig& c, const Format& f) {
  using dist::ShardAxis;
  using dist::shard_unit;
  dist::TpDims d;
  d.num_heads = c.num_attention_heads;
  d.num_kv_heads = c.num_key_value_heads;
  d.head_dim = c.head_dim;
  d.vocab = c.vocab_size;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    d.head_unit = lcm_units({d.head_unit, shard_unit(f.spec_for(p + "self_attn.q_proj"), ShardAxis::Output),
                             shard_unit(f.spec_for(p + "self_attn.o_proj"), ShardAxis::Input)});
    d.kv_head_unit = lcm_units({d.kv_head_unit, shard_unit(f.spec_for(p + "self_attn.k_proj"), ShardAxis::Output),
                                shard_unit(f.spec_for(p + "self_attn.v_proj"), ShardAxis::Output)});
    const bool moe = c.moe.num_experts > 0 && c.is_moe_layer(i);
    const std::string mlp = moe ? p + "mlp.experts.0." : p + "mlp.";
    int64_t& unit = moe ? d.moe_intermediate_unit : d.intermediate_unit;
    unit = lcm_units({unit, shard_unit(f.spec_for(mlp + "gate_proj"), ShardAxis::Output),
                      shard_unit(f.spec_for(mlp + "up_proj"), ShardAxis::Output),
                      shard_unit(f.spec_for(mlp + "down_proj"), ShardAxis::Input)});
    (moe ? d.moe_intermediate : d.intermediate) = moe ? c.moe.moe_intermediate_size : c.intermediate_size;
  }
  return d;
}
}  // namespace

TensorParallel::TensorParallel(TpGroup& group, const ModelConfig& config, const Format& format)
    : group_(group), config_(config), all_reduce_(group.comm()) {
  if (config.num_linear_attention_layers() > 0)
    fail("--tp-size {}: {} has Gated DeltaNet layers, which tensor parallelism does not split yet", group.size(),
         config.architecture_name);
  const dist::TpDims dims = tp_dims(config, format);
  layout_ = dist::make_tp_layout(dims, group.rank(), group.size());
  for (int r = 0; r < group.size(); ++r) vocab_of_rank_.push_back(dist::make_tp_layout(dims, r, group.size()).vocab);
}

ModelConfig TensorParallel::local_config() const {
  ModelConfig c = config_;
  c.num_attention_heads = layout_.q_heads.size();
  c.num_key_value_heads = layout_.kv_heads.size();
  if (c.intermediate_size > 0 && layout_.intermediate.size() > 0) c.intermediate_size = layout_.intermediate.size();
  if (c.moe.num_experts > 0) c.moe.moe_intermediate_size = layout_.moe_intermediate.size();
  return c;
}

dist::ShardSplit TensorParallel::split_for(const std::string& prefix) const {
  using dist::ShardAxis;
  const auto& c = config_;
  const int64_t h = c.hidden_size, hd = c.head_dim, q_dim = c.num_attention_heads * hd,
                kv_dim = c.num_key_value_heads * hd;
  const bool expert = prefix.find(".experts.") != std::string::npos;
  const dist::Range mlp = expert ? layout_.moe_intermediate : layout_.intermediate;
  const int64_t f = expert ? c.moe.moe_intermediate_size : c.intermediate_size;
  const bool first = group_.rank() == 0;
  if (ends_with(prefix, "self_attn.q_proj"))
    return {ShardAxis::Output, layout_.q_heads.begin * hd, layout_.q_heads.end * hd, {h, q_dim}, true};
  if (ends_with(prefix, "self_attn.k_proj") || ends_with(prefix, "self_attn.v_proj"))
    return {ShardAxis::Output, layout_.kv_heads.begin * hd, layout_.kv_heads.end * hd, {h, kv_dim}, true};
  if (ends_with(prefix, "self_attn.o_proj"))
    return {ShardAxis::Input, layout_.q_heads.begin * hd, layout_.q_heads.end * hd, {q_dim, h}, first};
  if (ends_with(prefix, "gate_proj") || ends_with(prefix, "up_proj"))
    return {ShardAxis::Output, mlp.begin, mlp.end, {h, f}, true};
  if (ends_with(prefix, "down_proj")) return {ShardAxis::Input, mlp.begin, mlp.end, {f, h}, first};
  if (ends_with(prefix, "lm_head"))
    return {ShardAxis::Output, layout_.vocab.begin, layout_.vocab.end, {h, c.vocab_size}, true};
  return {};  // routers and anything else: every rank holds all of it
}

void TensorParallel::calibrate() {
  if (group_.compression() != TpCompression::Auto) return;
  dist::LinkProbe probe;
  probe.hidden = config_.hidden_size;
  link_ = dist::LinkModel::measure(all_reduce_, probe);
}

dist::TpReduce TensorParallel::method_for(int64_t m, bool extend) const {
  if (!extend) return dist::TpReduce::Fp32;  // decode stays in full precision (as SGLang)
  switch (group_.compression()) {
    case TpCompression::Off: return dist::TpReduce::Fp32;
    case TpCompression::AllGather: return dist::TpReduce::Int8AllGather;
    case TpCompression::ReduceScatter: return dist::TpReduce::Int8ReduceScatter;
    case TpCompression::Auto: return link_.choose(m, config_.hidden_size);
  }
  return dist::TpReduce::Fp32;
}

void TensorParallel::reduce_add(float* partial, float* residual, int64_t m, bool extend) {
  const int64_t h = config_.hidden_size;
  const dist::TpReduce how = method_for(m, extend);
  const auto t0 = std::chrono::steady_clock::now();
  all_reduce_.run(how, partial, m, h, residual);
  counters_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  counters_.bytes_sent += dist::tp_reduce_bytes_per_rank(how, m, h, group_.size());
  (how == dist::TpReduce::Fp32 ? counters_.fp32
   : how == dist::TpReduce::Int8AllGather ? counters_.int8_allgather
                                          : counters_.int8_rs_ag)++;
}

void TensorParallel::gather_vocab(const float* local, int64_t rows, std::vector<float>& logits) {
  const int p = group_.size();
  const int64_t vocab = config_.vocab_size;
  counts_.resize(size_t(p));
  displs_.resize(size_t(p));
  int64_t offset = 0;
  for (int r = 0; r < p; ++r) {
    const dist::Range v = vocab_of_rank_[size_t(r)];
    counts_[size_t(r)] = rows * v.size() * int64_t(sizeof(float));
    displs_[size_t(r)] = offset;
    offset += counts_[size_t(r)];
  }
  gathered_.resize(size_t(rows * vocab));
  group_.comm().all_gather_v(local, gathered_.data(), counts_, displs_);
  if (logits.size() < size_t(rows * vocab)) logits.resize(size_t(rows * vocab));
  for (int r = 0; r < p; ++r) {  // rank r's block is [rows, its slice]
    const dist::Range v = vocab_of_rank_[size_t(r)];
    const float* block = gathered_.data() + displs_[size_t(r)] / int64_t(sizeof(float));
    for (int64_t i = 0; i < rows; ++i)
      std::copy_n(block + i * v.size(), v.size(), logits.data() + i * vocab + v.begin);
  }
}

std::string TensorParallel::describe() const {
  std::string s = fmt::format("tp {} ({}), all-reduce {}", group_.size(), layout_.describe(),
                              tp_compression_name(group_.compression()));
  if (group_.compression() == TpCompression::Auto) s += " [" + link_.describe() + "]";
  return s;
}

}  // namespace lowbit
