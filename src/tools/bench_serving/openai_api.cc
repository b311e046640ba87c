#include "tools/bench_serving/openai_api.h"

#include <fmt/format.h>

namespace lowbit::bench_serving {

namespace {

using nlohmann::json;

std::string snippet(std::string_view s, size_t limit = 300) {
  std::string out(s.substr(0, limit));
  if (s.size() > limit) out += "...";
  return out;
}

void append_string(std::string& out, const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it != obj.end() && it->is_string()) out += it->get_ref<const std::string&>();
}

// Error shapes in the wild: OpenAI/SGLang/llama.cpp {"error": {"message": ...}} or
// {"error": "text"}; vLLM {"object": "error", "message": ...}.
std::string error_in(const json& j) {
  if (!j.is_object()) return {};
  if (auto it = j.find("error"); it != j.end() && !it->is_null()) {
    if (it->is_string()) return it->get<std::string>();
    if (it->is_object() && it->contains("message") && (*it)["message"].is_string())
      return (*it)["message"].get<std::string>();
    return it->dump();
  }
  if (auto obj = j.find("object"); obj != j.end() && *obj == "error") {
    auto m = j.find("message");
    return m != j.end() && m->is_string() ? m->get<std::string>() : j.dump();
  }
  return {};
}

void read_usage(const json& j, ResponsePiece& piece) {
  auto it = j.find("usage");
  if (it == j.end() || !it->is_object()) return;
  if (auto c = it->find("completion_tokens"); c != it->end() && c->is_number_integer()) piece.completion_tokens = c->get<int64_t>();
  if (auto p = it->find("prompt_tokens"); p != it->end() && p->is_number_integer()) piece.prompt_tokens = p->get<int64_t>();
}

// `part` is "delta" for stream chunks and "message" for whole chat responses.
ResponsePiece read_object(Api api, std::string_view json_text, const char* part, const char* what) {
  ResponsePiece piece;
  json j = json::parse(json_text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    piece.error = fmt::format("{} is not a JSON object: {}", what, snippet(json_text));
    return piece;
  }
  piece.error = error_in(j);
  if (!piece.error.empty()) return piece;
  read_usage(j, piece);
  auto choices = j.find("choices");
  if (choices == j.end() || !choices->is_array()) return piece;  // e.g. the usage-only last chunk
  for (const json& choice : *choices) {
    if (!choice.is_object()) continue;
    if (api == Api::kCompletions) {
      append_string(piece.text, choice, "text");
    } else if (auto m = choice.find(part); m != choice.end() && m->is_object()) {
      append_string(piece.text, *m, "reasoning_content");
      append_string(piece.text, *m, "reasoning");  // vLLM's newer name
      append_string(piece.text, *m, "content");
    }
  }
  return piece;
}

}  // namespace

const char* endpoint_path(Api api) { return api == Api::kChat ? "/v1/chat/completions" : "/v1/completions"; }

json request_body(const ApiOptions& o, const std::string& prompt, int64_t max_tokens) {
  json body = {{"model", o.model}, {"max_tokens", max_tokens}, {"temperature", 0.0}, {"stream", o.stream}};
  if (o.api == Api::kChat) {
    body["messages"] = json::array({{{"role", "user"}, {"content", prompt}}});
  } else {
    body["prompt"] = prompt;
  }
  if (o.stream) body["stream_options"] = {{"include_usage", true}};
  if (o.ignore_eos) body["ignore_eos"] = true;
  for (const auto& [key, value] : o.extra_body.items()) body[key] = value;
  return body;
}

ResponsePiece read_stream_chunk(Api api, std::string_view json_text) {
  return read_object(api, json_text, "delta", "stream chunk");
}

ResponsePiece read_response(Api api, std::string_view json_text) {
  return read_object(api, json_text, "message", "response");
}

std::string error_message(std::string_view body) {
  std::string message = error_in(json::parse(body, nullptr, false));
  return message.empty() ? snippet(body) : snippet(message);
}

}  // namespace lowbit::bench_serving
