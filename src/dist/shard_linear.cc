#include "dist/shard_linear.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace lowbit::dist {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
bool is_float_dtype(DType d) { return d == DType::BF16 || d == DType::F16 || d == DType::F32; }
const char* axis_name(ShardAxis a) { return a == ShardAxis::Output ? "output" : "input"; }

// How one dimension of a tensor indexes the layer's N (or K): element i of dimension `dim`
// covers indices [i·div, (i+1)·div), the last one possibly short. dim < 0: the tensor does not
// depend on that index (per-tensor values, per-channel scales along K) and is shared.
struct Dim {
  int dim = -1;
  int64_t div = 1;
  std::string unit;  // what a boundary that is not a multiple of div would cut, for errors
};
struct Layout {
  Dim n, k;
};

// Memory behind gathered slices; also keeps the source's own storage alive, since views that
// are passed through may point into it.
struct SliceStorage {
  std::shared_ptr<const void> source;
  std::vector<std::unique_ptr<uint8_t[]>> buffers;
};

class Sharder {
 public:
  Sharder(const SchemeSpec& spec, const LinearTensors& t, const ShardSplit& split)
      : spec_(spec),
        t_(t),
        split_(split),
        output_(split.axis == ShardAxis::Output),
        float_weight_(is_float_dtype(t.weight.dtype)),
        n_(split.full.out_features),
        k_(split.full.in_features),
        scheme_(fmt::format("{} from {}", scheme_kind_name(spec.kind), spec.origin)) {
    store_->source = t.storage;
  }

  LinearTensors run() {
    const int64_t extent = output_ ? n_ : k_;
    if (n_ <= 0 || k_ <= 0)
      fail("{} ({}): tensor-parallel split without the full layer shape (in {}, out {})", t_.prefix, scheme_, k_, n_);
    if (split_.begin < 0 || split_.end > extent || split_.begin >= split_.end)
      fail("{} ({}): {} shard [{}, {}) is empty or outside {} = {}", t_.prefix, scheme_, axis_name(split_.axis),
           split_.begin, split_.end, output_ ? "N" : "K", extent);
    LinearTensors out;
    out.prefix = t_.prefix;
    out.weight = slice(t_.weight, weight_layout());
    if (t_.bias) {
      const Layout l = per_n(*t_.bias, {{n_}});
      if (output_ || split_.add_bias) out.bias = slice(*t_.bias, l);  // Input: added by one rank only
    }
    for (const auto& [role, v] : t_.extra) {
      if (role == "weight_g_idx" && !output_) {
        out.extra[role] = g_idx_slice(v);
      } else if (role == "quant_bias" && !output_ && !split_.add_bias) {
        // msmodelslim folds the float bias AND the activation zero-point correction
        // −input_offset·Σ_k wq[n, k] over ALL of K into quant_bias. The rank that adds it therefore
        // carries the full correction while every rank's integer sum covers only its own columns,
        // and the all-reduced sum Σ_ranks (Σ_{k∈rank} xq·wq) + quant_bias is exactly the unsharded
        // value (deq_scale is per row, so it factors out). Other ranks add zeros; the scheme still
        // needs the role.
        per_n(v, {{n_}});
        out.extra[role] = zeros_like(v);
      } else {
        out.extra[role] = slice(v, role_layout(role, v));
      }
    }
    out.storage = store_->buffers.empty() ? t_.storage : std::shared_ptr<const void>(store_);
    return out;
  }

 private:
  [[noreturn]] void fail_tensor(const TensorView& v, std::string_view message) const {
    fail("{}: tensor '{}' ({}): {}", t_.prefix, v.name, scheme_, message);
  }

  void expect_shape(const TensorView& v, std::initializer_list<std::vector<int64_t>> shapes) const {
    for (const auto& s : shapes)
      if (v.shape == s) return;
    std::string want;
    for (const auto& s : shapes) want += (want.empty() ? "" : " or ") + fmt::format("[{}]", fmt::join(s, ", "));
    fail_tensor(v, fmt::format("shape {} cannot be split: expected {} for the full layer [N = {}, K = {}]",
                               v.shape_str(), want, n_, k_));
  }

  int64_t group_size(const TensorView& v) const {
    const int64_t g = spec_.weight.group_size;
    if (g <= 0) fail_tensor(v, fmt::format("group size {} cannot be split along K", g));
    return g;
  }
  std::string group_unit(int64_t g) const { return fmt::format("quantization group of {} columns", g); }

  // Values indexed by N only: bias, quant_bias, deq_scale, per-channel scales [N] / [N, 1].
  Layout per_n(const TensorView& v, std::initializer_list<std::vector<int64_t>> shapes) const {
    expect_shape(v, shapes);
    return {{0, 1, "row"}, {}};
  }

  Layout weight_layout() const {
    const TensorView& w = t_.weight;
    const Dim row{0, 1, "row"}, col{1, 1, "column"};
    if (float_weight_) {  // FLOAT, or a float weight that online quantization will quantize at load
      expect_shape(w, {{n_, k_}});
      return {row, col};
    }
    WeightEncoding enc = spec_.encoding;
    if (spec_.kind == SchemeKind::Mxfp4) enc = WeightEncoding::Fp4PackedK;  // MxLinear decides by kind
    if (spec_.kind == SchemeKind::Mxfp8) enc = WeightEncoding::Native;
    switch (enc) {
      case WeightEncoding::Native:
      case WeightEncoding::Int4InInt8:
        expect_shape(w, {{n_, k_}});
        return {row, col};
      case WeightEncoding::Int4PackedRowPairs:
        expect_shape(w, {{ceil_div(n_, 2), k_}});
        return {{0, 2, "int4 row pair (two output rows per byte)"}, col};
      case WeightEncoding::Int4PackedInt32K:
        expect_shape(w, {{n_, ceil_div(k_, 8)}});
        return {row, {1, 8, "packed int32 word of 8 int4 columns"}};
      case WeightEncoding::Int4AwqGemm:
        expect_shape(w, {{k_, n_ / 8}});
        return {{1, 8, "AWQ int32 word of 8 int4 columns"}, {0, 1, "row"}};
      case WeightEncoding::Fp4PackedK:
        expect_shape(w, {{n_, ceil_div(k_, 2)}});
        return {row, {1, 2, "packed fp4 byte (two columns)"}};
    }
    fail_tensor(w, "unknown weight encoding");
  }

  // A scale or zero point that is per tensor, per channel, or (group quantization) [N, G].
  Layout group_or_channel(const TensorView& v) const {
    if (v.numel() == 1 && (v.shape.empty() || v.shape == std::vector<int64_t>{1} ||
                           v.shape == std::vector<int64_t>{1, 1}))
      return {};
    if (spec_.weight.granularity == Granularity::Group) {
      // W4A16 group scales [N, G]; W4A8 per-group keeps a per-channel weight_scale [N, 1].
      const int64_t g = group_size(v);
      if (v.shape == std::vector<int64_t>{n_, ceil_div(k_, g)}) return {{0, 1, "row"}, {1, g, group_unit(g)}};
      return per_n(v, {{n_, ceil_div(k_, g)}, {n_}, {n_, 1}});
    }
    return per_n(v, {{n_}, {n_, 1}});
  }

  Layout role_layout(const std::string& role, const TensorView& v) const {
    const bool awq = !float_weight_ && spec_.encoding == WeightEncoding::Int4AwqGemm;
    if (role == "weight_scale") {
      if (spec_.kind == SchemeKind::Mxfp8 || spec_.kind == SchemeKind::Mxfp4) {
        expect_shape(v, {{n_, k_ / 32}});
        return {{0, 1, "row"}, {1, 32, "MX block of 32 columns"}};
      }
      if (spec_.kind == SchemeKind::Fp8Block) {
        const int64_t br = spec_.weight.block_rows, bc = spec_.weight.group_size;
        if (br <= 0 || bc <= 0) fail_tensor(v, fmt::format("FP8 block [{}, {}] cannot be split", br, bc));
        expect_shape(v, {{ceil_div(n_, br), ceil_div(k_, bc)}});
        return {{0, br, fmt::format("FP8 block of {} rows", br)}, {1, bc, fmt::format("FP8 block of {} columns", bc)}};
      }
      if (awq) {  // transposed [G, N]
        const int64_t g = group_size(v);
        expect_shape(v, {{ceil_div(k_, g), n_}});
        return {{1, 1, "column"}, {0, g, group_unit(g)}};
      }
      return group_or_channel(v);
    }
    if (role == "weight_zero") {
      if (awq) {  // [G, N/8], packed along N like the weight
        const int64_t g = group_size(v);
        expect_shape(v, {{ceil_div(k_, g), n_ / 8}});
        return {{1, 8, "AWQ zero-point word of 8 columns"}, {0, g, group_unit(g)}};
      }
      if (!float_weight_ && spec_.encoding == WeightEncoding::Int4PackedInt32K) {
        // compressed-tensors asymmetric: int32 [ceil(N/8), G], 8 rows per word.
        const bool grouped = spec_.weight.granularity == Granularity::Group;
        const int64_t g = grouped ? group_size(v) : k_;
        expect_shape(v, {{ceil_div(n_, 8), ceil_div(k_, g)}});
        return {{0, 8, "zero-point int32 word of 8 rows"}, grouped ? Dim{1, g, group_unit(g)} : Dim{}};
      }
      return group_or_channel(v);  // msmodelslim weight_offset [N, 1] (zeros)
    }
    if (role == "weight_scale_second" || role == "weight_zero_second") {  // W4A8 per group: [N, K/g]
      const int64_t g = group_size(v);
      expect_shape(v, {{n_, ceil_div(k_, g)}});
      return {{0, 1, "row"}, {1, g, group_unit(g)}};
    }
    if (role == "weight_g_idx") {  // Output: every rank keeps all of K
      expect_shape(v, {{k_}});
      return {{}, {0, 1, "column"}};
    }
    if (role == "input_scale" || role == "input_zero") {
      if (v.numel() != 1) fail_tensor(v, fmt::format("shape {}: only per-tensor activation parameters can be shared "
                                                     "by tensor-parallel shards", v.shape_str()));
      return {};
    }
    if (role == "quant_bias" || role == "deq_scale") {
      return per_n(v, {{n_}});  // Input: per row, so shared (quant_bias on non-adding ranks: see run)
    }
    fail_tensor(v, fmt::format("role '{}' is unknown to tensor-parallel sharding", role));
  }

  // The part of `v` this rank keeps along the split axis, as a view when contiguous.
  TensorView slice(const TensorView& v, const Layout& l) {
    const Dim& d = output_ ? l.n : l.k;
    if (d.dim < 0) return v;
    const int64_t extent = output_ ? n_ : k_;
    for (int64_t b : {split_.begin, split_.end})
      if (b % d.div != 0 && b != extent)
        fail_tensor(v, fmt::format("{} boundary {} (shard [{}, {}) of {} = {}) splits a {}: boundaries must be "
                                   "multiples of {}",
                                   axis_name(split_.axis), b, split_.begin, split_.end, output_ ? "N" : "K", extent,
                                   d.unit, d.div));
    const int64_t lo = split_.begin / d.div, hi = ceil_div(split_.end, d.div);
    TensorView out = v;
    out.shape[size_t(d.dim)] = hi - lo;
    const size_t esize = dtype_size(v.dtype);
    const auto* src = static_cast<const uint8_t*>(v.data);
    if (d.dim == 0) {
      const size_t row_bytes = size_t(v.numel() / v.shape[0]) * esize;
      out.data = src + size_t(lo) * row_bytes;
      return out;
    }
    if (d.dim != 1 || v.shape.size() != 2) fail_tensor(v, "cannot slice this dimension");
    const int64_t rows = v.shape[0], cols = v.shape[1];
    uint8_t* dst = allocate(out.nbytes());
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(dst + size_t(r * (hi - lo)) * esize, src + size_t(r * cols + lo) * esize, size_t(hi - lo) * esize);
    out.data = dst;
    return out;
  }

  // Input split: this slice of g_idx, rebased to the slice's own groups. A column that belongs
  // to a group of another shard (act-order across the boundary) cannot be computed here.
  TensorView g_idx_slice(const TensorView& v) {
    expect_shape(v, {{k_}});
    if (v.dtype != DType::I32) fail_tensor(v, fmt::format("dtype {}, expected I32", dtype_name(v.dtype)));
    const int64_t g = group_size(v);
    for (int64_t b : {split_.begin, split_.end})
      if (b % g != 0 && b != k_)
        fail_tensor(v, fmt::format("input boundary {} splits a {}", b, group_unit(g)));
    const int64_t g0 = split_.begin / g, g1 = ceil_div(split_.end, g), len = split_.end - split_.begin;
    TensorView out = v;
    out.shape = {len};
    auto* dst = reinterpret_cast<int32_t*>(allocate(size_t(len) * 4));
    std::memcpy(dst, static_cast<const int32_t*>(v.data) + split_.begin, size_t(len) * 4);
    for (int64_t i = 0; i < len; ++i) {
      if (dst[i] < g0 || dst[i] >= g1)
        fail_tensor(v, fmt::format("input column {} is in group {}, outside this shard's groups [{}, {}) of "
                                   "columns [{}, {}): act-order groups cross the tensor-parallel boundary",
                                   split_.begin + i, dst[i], g0, g1, split_.begin, split_.end));
      dst[i] -= int32_t(g0);
    }
    out.data = dst;
    return out;
  }

  TensorView zeros_like(const TensorView& v) {
    TensorView out = v;
    uint8_t* dst = allocate(v.nbytes());
    std::memset(dst, 0, v.nbytes());
    out.data = dst;
    return out;
  }

  uint8_t* allocate(size_t bytes) {
    store_->buffers.push_back(std::make_unique<uint8_t[]>(bytes ? bytes : 1));
    return store_->buffers.back().get();
  }

  const SchemeSpec& spec_;
  const LinearTensors& t_;
  const ShardSplit& split_;
  const bool output_, float_weight_;
  const int64_t n_, k_;
  const std::string scheme_;
  std::shared_ptr<SliceStorage> store_ = std::make_shared<SliceStorage>();
};

}  // namespace

LinearShape local_shape(const ShardSplit& split) {
  LinearShape s = split.full;
  if (split.axis == ShardAxis::Output) s.out_features = split.end - split.begin;
  if (split.axis == ShardAxis::Input) s.in_features = split.end - split.begin;
  return s;
}

LinearTensors shard_linear_tensors(const SchemeSpec& spec, const LinearTensors& t, const ShardSplit& split) {
  if (split.axis == ShardAxis::Replicated) return t;
  return Sharder(spec, t, split).run();
}

int64_t shard_unit(const SchemeSpec& spec, ShardAxis axis) {
  int64_t unit = 1;
  const auto need = [&](int64_t m) {
    if (m > 1) unit = std::lcm(unit, m);
  };
  const bool mx = spec.kind == SchemeKind::Mxfp8 || spec.kind == SchemeKind::Mxfp4;
  if (axis == ShardAxis::Output) {
    if (spec.encoding == WeightEncoding::Int4AwqGemm) need(8);
    if (spec.encoding == WeightEncoding::Int4PackedRowPairs) need(2);
    if (spec.encoding == WeightEncoding::Int4PackedInt32K && !spec.weight.symmetric) need(8);
    if (spec.kind == SchemeKind::Fp8Block) need(spec.weight.block_rows);
  } else if (axis == ShardAxis::Input) {
    if (spec.encoding == WeightEncoding::Int4PackedInt32K) need(8);
    if (spec.encoding == WeightEncoding::Fp4PackedK || spec.kind == SchemeKind::Mxfp4) need(2);
    if (mx) need(32);
    if (spec.kind == SchemeKind::Fp8Block) need(spec.weight.group_size);
    if (spec.weight.granularity == Granularity::Group || spec.has_g_idx ||
        spec.encoding == WeightEncoding::Int4AwqGemm)
      need(spec.weight.group_size);
  }
  return unit;
}

}  // namespace lowbit::dist
