// A Format that hands each layer's tensors over already cut to this rank's tensor-parallel
// slice (dist/shard_linear.h), so the scheme repacks only what this rank computes and the
// checkpoint pages of the other ranks' slices are never touched by this process's kernels.
#include <string>
#include <utility>

#include "dist/shard_linear.h"

namespace lowbit::dist {

namespace {

class ShardedFormat final : public Format {
 public:
  ShardedFormat(std::unique_ptr<Format> base, std::function<ShardSplit(const std::string&)> plan)
      : base_(std::move(base)), plan_(std::move(plan)), name_(std::string(base_->name()) + "+tp") {}

  std::string_view name() const override { return name_; }
  SchemeSpec spec_for(const std::string& prefix) const override { return base_->spec_for(prefix); }
  void check_fused(std::span<const std::string> prefixes) const override { base_->check_fused(prefixes); }
  // The spec decides nothing alone: over online quantization it names a quantized kind while
  // the tensors are still float, and shard_linear_tensors reads the weight's own dtype.
  LinearTensors tensors_for(const std::string& prefix, bool has_bias) const override {
    const ShardSplit split = plan_(prefix);
    LinearTensors t = base_->tensors_for(prefix, has_bias);
    if (split.axis == ShardAxis::Replicated) return t;
    return shard_linear_tensors(base_->spec_for(prefix), t, split);
  }

 private:
  std::unique_ptr<Format> base_;
  std::function<ShardSplit(const std::string&)> plan_;
  std::string name_;
};

}  // namespace

std::unique_ptr<Format> make_sharded_format(std::unique_ptr<Format> base,
                                            std::function<ShardSplit(const std::string& prefix)> plan) {
  return std::make_unique<ShardedFormat>(std::move(base), std::move(plan));
}

}  // namespace lowbit::dist
