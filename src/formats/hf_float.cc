// Plain Hugging Face checkpoints: every linear layer is FLOAT, `<prefix>.weight` [N, K] and
// optionally `<prefix>.bias` [N].
#include "core/error.h"
#include "formats/format.h"

namespace lowbit {

namespace {
class HfFloatFormat final : public Format {
 public:
  explicit HfFloatFormat(const Checkpoint& ckpt) : ckpt_(ckpt) {}
  std::string_view name() const override { return "hf-float"; }
  SchemeSpec spec_for(const std::string&) const override { SchemeSpec s;
    s.origin = "hf:float";
    return s; }
  LinearTensors tensors_for(const std::string& prefix, bool has_bias) const override {
    LinearTensors t;
    t.prefix = prefix;
    t.weight = ckpt_.get(prefix + ".weight");
    if (has_bias) t.bias = ckpt_.get(prefix + ".bias");
    return t;
  }

 private:
  const Checkpoint& ckpt_;
};
}  // namespace

std::unique_ptr<Format> make_hf_float_format(const Checkpoint& ckpt) { return std::make_unique<HfFloatFormat>(ckpt); }

}  // namespace lowbit
