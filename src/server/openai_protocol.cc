#include "server/openai_protocol.h"

#include <cmath>
#include <limits>

namespace lowbit {

std::string error_type_for_status(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 405: return "method_not_allowed";
    case 413: return "request_too_large";
    case 503: return "service_unavailable";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

Json error_json(int status, const std::string& message, const std::string& param) {
  return {{"error",
           {{"message", message},
            {"type", error_type_for_status(status)},
            {"param", param.empty() ? Json(nullptr) : Json(param)},
            {"code", status}}}};
}

Json parse_json_body(std::string_view body) {
  if (body.empty()) throw ApiError(400, "request body is empty; expected a JSON object");
  Json j;
  try {
    j = Json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    // parse_error names the byte ("syntax error while parsing value - invalid string: ill-formed
    // UTF-8 byte; last read: ..."); out_of_range is a number beyond a double (found by
    // fuzz/openai_request_fuzz.cc: "2e4000" is valid JSON syntax).
    throw ApiError(400, std::string("request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ApiError(400, "request body must be a JSON object");
  return j;
}

namespace {

const char* type_name(const Json& v) {
  return v.is_string() ? "a string" : v.is_boolean() ? "a boolean" : v.is_number() ? "a number"
         : v.is_array() ? "an array" : v.is_object() ? "an object" : "null";
}

// Typed, range-checked access to optional fields of one JSON object; `prefix` qualifies
// parameter names in messages ("sampling_params.").
class Fields {
 public:
  Fields(const Json& obj, std::string prefix = "") : obj_(obj), prefix_(std::move(prefix)) {}
  const Json* get(const char* name) const {
    auto it = obj_.find(name);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  std::string param(const char* name) const { return prefix_ + name; }

  std::optional<double> number(const char* name, double lo, double hi) const {
    const Json* v = get(name);
    if (!v) return std::nullopt;
    if (!v->is_number()) bad_request(param(name), "'{}' must be a number, got {}", param(name), type_name(*v));
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi)
      bad_request(param(name), "'{}' must be between {} and {}, got {}", param(name), lo, hi, x);
    return x;
  }
  std::optional<int64_t> integer(const char* name, int64_t lo, int64_t hi) const {
    const Json* v = get(name);
    if (!v) return std::nullopt;
    if (v->is_number_float()) {
      const double d = v->get<double>();
      if (d != std::floor(d)) bad_request(param(name), "'{}' must be an integer, got {}", param(name), d);
    } else if (!v->is_number_integer()) {
      bad_request(param(name), "'{}' must be an integer, got {}", param(name), type_name(*v));
    }
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      bad_request(param(name), "'{}' must be between {} and {}", param(name), lo, hi);
    if (v->is_number_float()) {
      // Range-check as a double: converting 6e85 to int64_t first is undefined behaviour.
      const double d = v->get<double>();
      if (!(d >= double(lo) && d <= double(hi) && std::fabs(d) < 0x1p63))
        bad_request(param(name), "'{}' must be between {} and {}, got {}", param(name), lo, hi, d);
    }
    const int64_t x = v->is_number_float() ? int64_t(v->get<double>()) : v->get<int64_t>();
    if (x < lo || x > hi) bad_request(param(name), "'{}' must be between {} and {}, got {}", param(name), lo, hi, x);
    return x;
  }
  std::optional<bool> boolean(const char* name) const {
    const Json* v = get(name);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) bad_request(param(name), "'{}' must be a boolean, got {}", param(name), type_name(*v));
    return v->get<bool>();
  }
  std::optional<std::string> string(const char* name) const {
    const Json* v = get(name);
    if (!v) return std::nullopt;
    if (!v->is_string()) bad_request(param(name), "'{}' must be a string, got {}", param(name), type_name(*v));
    return v->get<std::string>();
  }
  // A string or a list of strings (stop).
  std::vector<std::string> strings(const char* name, size_t max_items) const {
    const Json* v = get(name);
    std::vector<std::string> out;
    if (!v) return out;
    if (v->is_string()) {
      out.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      for (size_t i = 0; i < v->size(); ++i) {
        if (!(*v)[i].is_string()) bad_request(param(name), "'{}[{}]' must be a string", param(name), i);
        out.push_back((*v)[i].get<std::string>());
      }
    } else {
      bad_request(param(name), "'{}' must be a string or a list of strings, got {}", param(name), type_name(*v));
    }
    if (out.size() > max_items) bad_request(param(name), "'{}' has {} entries; at most {} are allowed", param(name), out.size(), max_items);
    for (const auto& s : out)
      if (s.empty()) bad_request(param(name), "'{}' must not contain empty strings", param(name));
    return out;
  }
  std::vector<int32_t> token_ids(const char* name) const {
    const Json* v = get(name);
    std::vector<int32_t> out;
    if (!v) return out;
    if (!v->is_array()) bad_request(param(name), "'{}' must be a list of token ids", param(name));
    for (size_t i = 0; i < v->size(); ++i) {
      const Json& t = (*v)[i];
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > std::numeric_limits<int32_t>::max())
        bad_request(param(name), "'{}[{}]' must be a non-negative integer token id", param(name), i);
      out.push_back(t.get<int32_t>());
    }
    return out;
  }

 private:
  const Json& obj_;
  std::string prefix_;
};

constexpr double kHuge = 1e9;

// Sampling values shared by the OpenAI endpoints and SGLang's sampling_params, with the
// extra fields SGLang and vLLM accept (top_k, min_p, repetition_penalty, ...).
void parse_sampling(const Fields& f, GenerationFields& g) {
  SamplingParams& s = g.sampling;
  if (auto v = f.number("temperature", 0, 100)) s.temperature = float(*v);
  if (auto v = f.number("top_p", 0, 1)) {
    if (*v <= 0) bad_request(f.param("top_p"), "'{}' must be in (0, 1], got {}", f.param("top_p"), *v);
    s.top_p = float(*v);
  }
  if (auto v = f.integer("top_k", -1, 1 << 30)) s.top_k = *v < 0 ? 0 : *v;  // -1: off (vLLM/SGLang)
  if (auto v = f.number("min_p", 0, 1)) s.min_p = float(*v);
  if (auto v = f.number("presence_penalty", -2, 2)) s.presence_penalty = float(*v);
  if (auto v = f.number("frequency_penalty", -2, 2)) s.frequency_penalty = float(*v);
  if (auto v = f.number("repetition_penalty", 0, 100)) {
    if (*v <= 0) bad_request(f.param("repetition_penalty"), "'{}' must be > 0", f.param("repetition_penalty"));
    s.repetition_penalty = float(*v);
  }
  const char* seed_name = f.get("seed") ? "seed" : "sampling_seed";
  if (auto v = f.integer(seed_name, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max())) {
    s.seed = uint64_t(*v);
    g.seeded = true;
  }
  g.stop = f.strings("stop", 16);
  g.stop_token_ids = f.token_ids("stop_token_ids");
  if (auto v = f.boolean("ignore_eos")) g.ignore_eos = *v;
  if (auto v = f.boolean("skip_special_tokens")) g.skip_special_tokens = *v;
  try {
    s.validate();
  } catch (const Error& e) {
    throw ApiError(400, e.what());
  }
}

void parse_common(const Fields& f, GenerationFields& g, const char* max_tokens_name) {
  // max_tokens is checked against the context once the prompt length is known; here only
  // absurd values (which would overflow any context) are rejected.
  if (auto v = f.integer(max_tokens_name, 1, int64_t(1) << 40)) g.max_tokens = *v;
  if (auto v = f.integer("n", 1, kMaxChoices)) g.n = int(*v);
  if (auto v = f.boolean("stream")) g.stream = *v;
  if (const Json* so = f.get("stream_options")) {
    if (!so->is_object()) bad_request("stream_options", "'stream_options' must be an object");
    Fields sf(*so, "stream_options.");
    if (auto v = sf.boolean("include_usage")) g.include_usage = *v;
  }
  parse_sampling(f, g);
}

std::string model_field(const Fields& f) { return f.string("model").value_or(""); }

void check_messages(const Json& messages) {
  if (!messages.is_array() || messages.empty()) bad_request("messages", "'messages' must be a non-empty list of messages");
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    const std::string p = fmt::format("messages[{}]", i);
    if (!m.is_object()) bad_request(p, "'{}' must be an object", p);
    if (!m.contains("role") || !m["role"].is_string()) bad_request(p + ".role", "'{}.role' must be a string", p);
    if (m.contains("content")) {
      const Json& c = m["content"];
      if (c.is_array()) {
        for (size_t k = 0; k < c.size(); ++k) {
          const Json& part = c[k];
          if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
            bad_request(fmt::format("{}.content[{}]", p, k),
                        "'{}.content[{}]' must be {{\"type\": \"text\", \"text\": string}} (only text is supported)", p, k);
        }
      } else if (!c.is_string() && !c.is_null()) {
        bad_request(p + ".content", "'{}.content' must be a string, a list of text parts or null", p);
      }
    }
  }
}

std::vector<PromptInput> parse_prompts(const Json& v, const std::string& name, bool& batch) {
  std::vector<PromptInput> out;
  batch = false;
  auto ids_of = [&](const Json& arr, const std::string& p) {
    PromptInput in;
    in.is_ids = true;
    for (size_t i = 0; i < arr.size(); ++i) {
      const Json& t = arr[i];
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > std::numeric_limits<int32_t>::max())
        bad_request(name, "'{}[{}]' must be a non-negative integer token id", p, i);
      in.ids.push_back(t.get<int32_t>());
    }
    if (in.ids.empty()) bad_request(name, "'{}' must not be an empty list of token ids", p);
    return in;
  };
  if (v.is_string()) {
    out.push_back({v.get<std::string>(), {}, false});
  } else if (v.is_array() && !v.empty() && v[0].is_number()) {
    out.push_back(ids_of(v, name));
  } else if (v.is_array() && !v.empty()) {
    batch = true;
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string p = fmt::format("{}[{}]", name, i);
      if (v[i].is_string()) out.push_back({v[i].get<std::string>(), {}, false});
      else if (v[i].is_array()) out.push_back(ids_of(v[i], p));
      else bad_request(name, "'{}' must be a string or a list of token ids", p);
    }
  } else {
    bad_request(name, "'{}' must be a string, a list of strings, a list of token ids or a list of such lists", name);
  }
  if (out.size() > 256) bad_request(name, "'{}' has {} prompts; at most 256 are allowed per request", name, out.size());
  return out;
}

}  // namespace

ChatRequest parse_chat_request(const Json& body, const SamplingParams& defaults) {
  Fields f(body);
  ChatRequest r;
  r.gen.sampling = defaults;
  r.model = model_field(f);
  if (!body.contains("messages")) bad_request("messages", "'messages' is required");
  r.messages = body["messages"];
  check_messages(r.messages);
  const char* max_name = f.get("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  parse_common(f, r.gen, max_name);
  if (auto lp = f.boolean("logprobs"); lp && *lp) r.gen.top_logprobs = 0;
  if (auto k = f.integer("top_logprobs", 0, 20)) {
    if (r.gen.top_logprobs < 0) bad_request("top_logprobs", "'top_logprobs' requires 'logprobs': true");
    r.gen.top_logprobs = int(*k);
  }
  std::string tool_choice = "auto";
  if (const Json* tc = f.get("tool_choice")) {
    if (tc->is_string()) {
      tool_choice = tc->get<std::string>();
      if (tool_choice != "auto" && tool_choice != "none" && tool_choice != "required")
        bad_request("tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or an object, got \"{}\"", tool_choice);
    } else if (!tc->is_object()) {
      bad_request("tool_choice", "'tool_choice' must be a string or an object");
    }
  }
  if (const Json* tools = f.get("tools")) {
    if (!tools->is_array()) bad_request("tools", "'tools' must be a list");
    for (size_t i = 0; i < tools->size(); ++i) {
      const Json& t = (*tools)[i];
      if (!t.is_object() || !t.contains("function") || !t["function"].is_object() || !t["function"].contains("name") ||
          !t["function"]["name"].is_string())
        bad_request(fmt::format("tools[{}]", i), "'tools[{}]' must be {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}", i);
    }
    if (tool_choice != "none" && !tools->empty()) r.tools = *tools;
  }
  if (const Json* kw = f.get("chat_template_kwargs")) {
    if (!kw->is_object()) bad_request("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    r.template_kwargs = *kw;
  }
  if (auto v = f.boolean("add_generation_prompt")) r.add_generation_prompt = *v;
  if (auto v = f.boolean("separate_reasoning")) r.separate_reasoning = *v;
  return r;
}

CompletionRequest parse_completion_request(const Json& body, const SamplingParams& defaults) {
  Fields f(body);
  CompletionRequest r;
  r.gen.sampling = defaults;
  r.model = model_field(f);
  if (!f.get("prompt")) bad_request("prompt", "'prompt' is required");
  bool batch = false;
  r.prompts = parse_prompts(body["prompt"], "prompt", batch);
  parse_common(f, r.gen, "max_tokens");
  if (auto v = f.integer("logprobs", 0, 20)) r.gen.top_logprobs = int(*v);
  if (auto v = f.boolean("echo")) r.echo = *v;
  if (f.get("suffix")) bad_request("suffix", "'suffix' is not supported");
  if (auto bo = f.integer("best_of", 1, kMaxChoices); bo && *bo != r.gen.n)
    bad_request("best_of", "'best_of' other than n is not supported");
  return r;
}

GenerateRequest parse_generate_request(const Json& body, const SamplingParams& defaults) {
  Fields f(body);
  GenerateRequest r;
  r.gen.sampling = defaults;
  const bool has_text = f.get("text") != nullptr, has_ids = f.get("input_ids") != nullptr;
  if (has_text == has_ids) bad_request("text", "exactly one of 'text' and 'input_ids' is required");
  if (has_text) {
    const Json& t = body["text"];
    if (!t.is_string() && !t.is_array()) bad_request("text", "'text' must be a string or a list of strings");
    if (t.is_array())
      for (size_t i = 0; i < t.size(); ++i)
        if (!t[i].is_string()) bad_request("text", "'text[{}]' must be a string", i);
    r.prompts = parse_prompts(t, "text", r.batch);
  } else {
    const Json& ids = body["input_ids"];
    if (!ids.is_array() || ids.empty()) bad_request("input_ids", "'input_ids' must be a non-empty list of token ids");
    r.prompts = parse_prompts(ids, "input_ids", r.batch);
  }
  if (auto v = f.boolean("stream")) r.gen.stream = *v;
  if (auto v = f.boolean("return_logprob")) r.return_logprob = *v;
  if (const Json* sp = f.get("sampling_params")) {
    if (!sp->is_object()) bad_request("sampling_params", "'sampling_params' must be an object");
    Fields sf(*sp, "sampling_params.");
    if (auto v = sf.integer("max_new_tokens", 1, int64_t(1) << 40)) r.gen.max_tokens = *v;
    if (auto v = sf.integer("n", 1, kMaxChoices)) r.gen.n = int(*v);
    parse_sampling(sf, r.gen);
  }
  if (r.return_logprob) {
    r.gen.top_logprobs = 0;
    if (auto k = f.integer("top_logprobs_num", 0, 20)) r.gen.top_logprobs = int(*k);
  }
  return r;
}

}  // namespace lowbit
