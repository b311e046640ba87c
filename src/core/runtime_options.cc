#include "core/runtime_options.h"

#include <cstdlib>
#include <initializer_list>

#include "core/error.h"

namespace lowbit {

namespace {

void check_one_of(const std::string& value, std::initializer_list<const char*> allowed, const std::string& what) {
  std::string list;
  for (const char* a : allowed) {
    if (value == a) return;
    list += list.empty() ? a : std::string("|") + a;
  }
  fail("{}: '{}' is not one of {}", what, value, list);
}

void from_env(std::string& field, const char* name) {
  if (const char* v = std::getenv(name); v && *v) field = v;
}

RuntimeOptions initial() {
  RuntimeOptions o;
  from_env(o.float_activations, "LOWBIT_FLOAT_ACTIVATIONS");
  check_one_of(o.float_activations, {"auto", "bf16", "f32"}, "LOWBIT_FLOAT_ACTIVATIONS");
  from_env(o.w4a16_activations, "LOWBIT_W4A16_ACTIVATIONS");
  check_one_of(o.w4a16_activations, {"auto", "int8", "bf16", "float"}, "LOWBIT_W4A16_ACTIVATIONS");
  from_env(o.kv_cache_dtype, "LOWBIT_KV_CACHE_DTYPE");
  check_one_of(o.kv_cache_dtype, {"auto", "bf16", "f32", "fp8_e4m3"}, "LOWBIT_KV_CACHE_DTYPE");
  if (const char* v = std::getenv("LOWBIT_QUANTIZE_LM_HEAD"); v && *v) o.quantize_lm_head = std::string(v) != "0";
  from_env(o.float_weights, "LOWBIT_FLOAT_WEIGHTS");
  check_one_of(o.float_weights, {"copy", "mapped"}, "LOWBIT_FLOAT_WEIGHTS");
  return o;
}

}  // namespace

RuntimeOptions& runtime_options() {
  static RuntimeOptions o = initial();
  return o;
}

std::string w4a16_activation_math(const RuntimeOptions& o, bool cpu_bf16) {
  if (o.w4a16_activations != "auto") return o.w4a16_activations;
  const bool bf16 = o.float_activations == "bf16" || (o.float_activations == "auto" && cpu_bf16);
  return bf16 ? "bf16" : "float";
}

}  // namespace lowbit
