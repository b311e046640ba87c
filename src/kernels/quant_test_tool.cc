// Test-only driver for tests/python/test_quant_reference.py: reads one JSON request on stdin,
// runs a reference quantizer or packer, writes a JSON reply on stdout. Floats cross the
// boundary as their IEEE-754 bit patterns (uint32) so nothing is lost to decimal printing.
//   {"op": "weight_sym", "x": [bits], "n", "k", "bits", "group", "rule": "qmax"|"ct",
//    "compute": "f32"|"bf16"|"f16"}                      → {"q", "scale", "zero"?}
//   {"op": "weight_asym_ct" | "weight_awq", ...same}      → {"q", "scale", "zero"}
//   {"op": "act_token", "x", "m", "k", "bits"}            → {"q", "scale"}
//   {"op": "act_static", "x", "scale": bits, "offset": bits} → {"q"}
//   {"op": "calibrate", "lo": bits, "hi": bits}          → {"scale": bits, "offset": bits}
//   {"op": "mx", "x", "m", "k", "elem": "e4m3"|"e2m1", "rule": "ocp"|"msfp8"|"msfp4"}
//                                                          → {"q", "scale"} (E8M0 codes)
//   {"op": "fp8_weight", "x", "n", "k", "gran": "tensor"|"channel"|"block", "block", "compute"}
//   {"op": "fp8_act", "x", "m", "k", "group"}              → {"q", "scale"}
//   {"op": "encode", "x", "fmt": "e4m3"|"e4m3_away"|"e2m1"|"e2m1_away"} → {"q"}
//   {"op": "pack", "codes", "n", "k", "enc": "row_pairs"|"int32k"|"awq"|"fp4"|"zp_n"}
//                                                          → {"packed"}
// Errors print {"error": message} and exit 1.
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/int4_packing.h"
#include "core/quant_types.h"
#include "kernels/reference/quantize_ref.h"

namespace lowbit {
namespace {

using nlohmann::json;

float bits_to_f32(int64_t b) {
  const uint32_t u = uint32_t(b);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t f32_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
std::vector<float> floats(const json& j) {
  std::vector<float> v;
  for (const auto& b : j) v.push_back(bits_to_f32(b.get<int64_t>()));
  return v;
}
json float_bits(const std::vector<float>& v) {
  json a = json::array();
  for (float f : v) a.push_back(f32_to_bits(f));
  return a;
}
template <class T>
json ints(const T* p, size_t n) {
  json a = json::array();
  for (size_t i = 0; i < n; ++i) a.push_back(int64_t(p[i]));
  return a;
}

ComputeDType compute_of(const json& r) {
  const std::string c = r.value("compute", "f32");
  if (c == "f32") return ComputeDType::F32;
  if (c == "bf16") return ComputeDType::BF16;
  if (c == "f16") return ComputeDType::F16;
  fail("unknown compute dtype {}", c);
}

json weight_reply(const IntWeightQuant& q) {
  json out{{"q", ints(q.q.data(), q.q.size())}, {"scale", float_bits(q.scale)}};
  if (!q.zero.empty()) out["zero"] = ints(q.zero.data(), q.zero.size());
  return out;
}

json run(const json& r) {
  const std::string op = r.at("op");
  if (op == "weight_sym" || op == "weight_asym_ct" || op == "weight_awq") {
    const auto x = floats(r.at("x"));
    const int64_t n = r.at("n"), k = r.at("k"), group = r.value("group", int64_t(0));
    const ComputeDType c = compute_of(r);
    if (op == "weight_awq") return weight_reply(quantize_weight_awq(x.data(), n, k, group, c));
    const int bits = r.at("bits");
    if (op == "weight_asym_ct")
      return weight_reply(quantize_weight_asym_ct(x.data(), n, k, bits, group, c));
    const IntScaleRule rule =
        r.value("rule", "qmax") == "ct" ? IntScaleRule::CompressedTensors : IntScaleRule::QMax;
    return weight_reply(quantize_weight_sym(x.data(), n, k, bits, group, rule, c));
  }
  if (op == "act_token") {
    const auto x = floats(r.at("x"));
    const int64_t m = r.at("m"), k = r.at("k");
    std::vector<int8_t> q(x.size());
    std::vector<float> s(static_cast<size_t>(m));
    quantize_act_per_token_sym(x.data(), m, k, r.at("bits"), q.data(), s.data());
    return {{"q", ints(q.data(), q.size())}, {"scale", float_bits(s)}};
  }
  if (op == "calibrate") {
    const auto c = calibrate_static_asym_int8(bits_to_f32(r.at("lo")), bits_to_f32(r.at("hi")));
    return {{"scale", f32_to_bits(c.input_scale)}, {"offset", f32_to_bits(c.input_offset)}};
  }
  if (op == "act_static") {
    const auto x = floats(r.at("x"));
    std::vector<int8_t> q(x.size());
    quantize_act_static_asym(x.data(), int64_t(x.size()), bits_to_f32(r.at("scale")),
                             bits_to_f32(r.at("offset")), q.data());
    return {{"q", ints(q.data(), q.size())}};
  }
  if (op == "mx") {
    const auto x = floats(r.at("x"));
    const int64_t m = r.at("m"), k = r.at("k");
    const MxElem e = r.at("elem") == "e2m1" ? MxElem::E2M1 : MxElem::E4M3;
    const std::string rn = r.at("rule");
    const MxScaleRule rule = rn == "ocp"     ? MxScaleRule::Ocp
                             : rn == "msfp8" ? MxScaleRule::MsModelSlimFp8
                                             : MxScaleRule::MsModelSlimFp4;
    std::vector<uint8_t> q(x.size()), s(size_t(m * (k / kMxBlock)));
    quantize_mx(x.data(), m, k, e, rule, q.data(), s.data());
    return {{"q", ints(q.data(), q.size())}, {"scale", ints(s.data(), s.size())}};
  }
  if (op == "fp8_weight") {
    const auto x = floats(r.at("x"));
    const std::string g = r.at("gran");
    const Fp8Granularity gran = g == "tensor"    ? Fp8Granularity::Tensor
                                : g == "channel" ? Fp8Granularity::Channel
                                                 : Fp8Granularity::Block;
    auto q = quantize_weight_fp8(x.data(), r.at("n"), r.at("k"), gran, r.value("block", 128),
                                 compute_of(r));
    return {{"q", ints(q.q.data(), q.q.size())}, {"scale", float_bits(q.scale)}};
  }
  if (op == "fp8_act") {
    const auto x = floats(r.at("x"));
    const int64_t m = r.at("m"), k = r.at("k"), g = r.at("group");
    std::vector<uint8_t> q(x.size());
    std::vector<float> s(size_t(m * ((k + g - 1) / g)));
    quantize_act_fp8_groups(x.data(), m, k, g, q.data(), s.data());
    return {{"q", ints(q.data(), q.size())}, {"scale", float_bits(s)}};
  }
  if (op == "encode") {
    const auto x = floats(r.at("x"));
    const std::string f = r.at("fmt");
    std::vector<uint8_t> q;
    for (float v : x)
      q.push_back(f == "e4m3"        ? f32_to_fp8_e4m3_rne(v)
                  : f == "e4m3_away" ? f32_to_fp8_e4m3_half_away(v)
                  : f == "e2m1"      ? f32_to_fp4_e2m1_rne(v)
                                     : f32_to_fp4_e2m1_half_away(v));
    return {{"q", ints(q.data(), q.size())}};
  }
  if (op == "pack") {
    std::vector<int8_t> c;
    for (const auto& v : r.at("codes")) c.push_back(int8_t(v.get<int>()));
    std::vector<uint8_t> u(c.begin(), c.end());
    const int64_t n = r.at("n"), k = r.at("k");
    const std::string enc = r.at("enc");
    if (enc == "row_pairs") {
      auto p = pack_int4_row_pairs(c.data(), n, k);
      return {{"packed", ints(p.data(), p.size())}};
    }
    if (enc == "int32k") {
      auto p = pack_int4_int32_k(c.data(), n, k);
      return {{"packed", ints(p.data(), p.size())}};
    }
    if (enc == "awq") {
      auto p = pack_int4_awq_gemm(u.data(), n, k);
      return {{"packed", ints(p.data(), p.size())}};
    }
    if (enc == "fp4") {
      auto p = pack_fp4_k(u.data(), n, k);
      return {{"packed", ints(p.data(), p.size())}};
    }
    if (enc == "zp_n") {
      auto p = pack_int4_zero_points_n(c.data(), n, k);
      return {{"packed", ints(p.data(), p.size())}};
    }
    fail("unknown encoding {}", enc);
  }
  fail("unknown op {}", op);
}

}  // namespace
}  // namespace lowbit

int main() {
  try {
    const auto request = nlohmann::json::parse(std::cin);
    std::cout << lowbit::run(request).dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cout << nlohmann::json{{"error", e.what()}}.dump() << "\n";
    return 1;
  }
}
