#include "formats/format_util.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>

#include "core/error.h"

namespace lowbit {

void Format::check_fused(std::span<const std::string> prefixes) const {
  formats::check_same_spec(*this, prefixes, name());
}

namespace formats {

std::string shape_string(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

TensorView LayerReader::get(std::string_view suffix) const {
  const std::string n = name(suffix);
  if (!ckpt_.has(n))
    fail("{}: layer '{}' ({}) needs tensor '{}', which is not in the checkpoint", ckpt_.dir().string(), prefix_, what_,
         n);
  return ckpt_.get(n);
}

TensorView LayerReader::get(std::string_view suffix, std::initializer_list<DType> dtypes) const {
  TensorView v = get(suffix);
  if (dtypes.size() > 0 && std::find(dtypes.begin(), dtypes.end(), v.dtype) == dtypes.end()) {
    std::vector<std::string_view> names;
    for (DType d : dtypes) names.push_back(dtype_name(d));
    fail_tensor(suffix, fmt::format("dtype {}, expected {}", dtype_name(v.dtype), fmt::join(names, " or ")));
  }
  return v;
}

TensorView LayerReader::get(std::string_view suffix, std::initializer_list<DType> dtypes,
                            const std::vector<int64_t>& shape) const {
  TensorView v = get(suffix, dtypes);
  if (v.shape != shape)
    fail_tensor(suffix, fmt::format("shape {}, expected {}", shape_string(v.shape), shape_string(shape)));
  return v;
}

void LayerReader::fail_tensor(std::string_view suffix, std::string_view message) const {
  const std::string n = name(suffix);
  const std::string file = ckpt_.has(n) ? (ckpt_.dir() / ckpt_.file_of(n)).string() : ckpt_.dir().string();
  fail("{}: tensor '{}' ({}): {}", file, n, what_, message);
}

std::vector<std::string> prefixes_with_suffix(const std::vector<std::string>& names,
                                              std::initializer_list<std::string_view> suffixes) {
  std::vector<std::string> out;
  for (const std::string& n : names)
    for (std::string_view s : suffixes)
      if (n.size() > s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0) {
        out.push_back(n.substr(0, n.size() - s.size()));
        break;
      }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

namespace {
// The key of the fused group `prefix` belongs to, or "" if it is not part of one.
std::string fused_key(const std::string& prefix) {
  // MoE: "model.layers.3.mlp.experts.17.gate_proj" -> "model.layers.3.mlp.experts".
  if (auto e = parse_expert_prefix(prefix)) return e->experts;
  const size_t dot = prefix.rfind('.');
  const std::string parent = dot == std::string::npos ? "" : prefix.substr(0, dot + 1);
  const std::string leaf = prefix.substr(parent.size());
  if (leaf == "q_proj" || leaf == "k_proj" || leaf == "v_proj") return parent + "{q,k,v}_proj";
  if (leaf == "gate_proj" || leaf == "up_proj") return parent + "{gate,up}_proj";
  return "";
}
}  // namespace

std::optional<ExpertPrefix> parse_expert_prefix(std::string_view prefix) {
  const size_t e = prefix.find(".experts.");
  if (e == std::string_view::npos) return std::nullopt;
  const size_t digits = e + 9;
  size_t end = digits;
  int64_t index = 0;
  for (; end < prefix.size() && prefix[end] >= '0' && prefix[end] <= '9'; ++end)
    index = index * 10 + (prefix[end] - '0');
  if (end == digits || end + 1 >= prefix.size() || prefix[end] != '.') return std::nullopt;
  return ExpertPrefix{std::string(prefix.substr(0, e + 8)), index, std::string(prefix.substr(end + 1))};
}

std::vector<std::vector<std::string>> fused_groups(const std::vector<std::string>& prefixes) {
  std::map<std::string, std::vector<std::string>> groups;
  for (const std::string& p : prefixes) {
    std::string key = fused_key(p);
    if (!key.empty()) groups[key].push_back(p);
  }
  std::vector<std::vector<std::string>> out;
  for (auto& [key, members] : groups) {
    if (members.size() < 2) continue;
    std::sort(members.begin(), members.end());
    members.erase(std::unique(members.begin(), members.end()), members.end());
    out.push_back(std::move(members));
  }
  return out;
}

namespace {
bool same_args(const QuantArgs& a, const QuantArgs& b) {
  return a.bits == b.bits && a.kind == b.kind && a.granularity == b.granularity && a.group_size == b.group_size &&
         a.block_rows == b.block_rows && a.symmetric == b.symmetric && a.dynamic == b.dynamic;
}
}  // namespace

bool same_spec(const SchemeSpec& a, const SchemeSpec& b) {
  if (a.kind != b.kind || a.encoding != b.encoding || a.has_g_idx != b.has_g_idx || a.origin != b.origin ||
      !same_args(a.weight, b.weight) || a.activation.has_value() != b.activation.has_value())
    return false;
  return !a.activation || same_args(*a.activation, *b.activation);
}

void check_same_spec(const Format& format, std::span<const std::string> prefixes, std::string_view where) {
  if (prefixes.size() < 2) return;
  const SchemeSpec first = format.spec_for(prefixes[0]);
  for (size_t i = 1; i < prefixes.size(); ++i) {
    const SchemeSpec other = format.spec_for(prefixes[i]);
    if (!same_spec(first, other))
      fail("{}: fused modules must share one scheme: '{}' is {} ({}) but '{}' is {} ({})", where, prefixes[0],
           scheme_kind_name(first.kind), first.origin, prefixes[i], scheme_kind_name(other.kind), other.origin);
  }
}

LinearTensors float_tensors(const Checkpoint& ckpt, const std::string& prefix, bool has_bias, std::string_view what) {
  LayerReader r(ckpt, prefix, std::string(what));
  LinearTensors t;
  t.prefix = prefix;
  t.weight = r.get("weight", kFloatTypes);
  if (t.weight.shape.size() != 2)
    r.fail_tensor("weight", fmt::format("shape {}, expected [N, K]", shape_string(t.weight.shape)));
  if (has_bias) t.bias = r.get("bias", kFloatTypes, {t.weight.shape[0]});
  return t;
}

SchemeSpec float_spec(std::string origin) {
  SchemeSpec s;
  s.origin = std::move(origin);
  return s;
}

}  // namespace formats
}  // namespace lowbit
