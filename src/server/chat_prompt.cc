#include "server/chat_prompt.h"

#include "chat/chat_template.h"

namespace lowbit {

namespace {
Json normalize_message(const Json& m) {
  Json out = m;
  if (out.contains("content") && out["content"].is_array()) {
    std::string text;
    for (const auto& part : out["content"]) text += part["text"].get<std::string>();
    out["content"] = text;
  }
  if (out.contains("tool_calls") && out["tool_calls"].is_array()) {
    for (auto& call : out["tool_calls"]) {
      if (!call.is_object() || !call.contains("function") || !call["function"].is_object()) continue;
      auto& fn = call["function"];
      if (fn.contains("arguments") && fn["arguments"].is_string()) {
        auto parsed = Json::parse(fn["arguments"].get<std::string>(), nullptr, false);
        if (!parsed.is_discarded() && parsed.is_object()) fn["arguments"] = parsed;
      }
    }
  }
  return out;
}
}  // namespace

std::string render_chat_prompt(const ChatTemplate& tmpl, const ChatRequest& r) {
  Json ctx = Json::object();
  // chat_template_kwargs first, so the request's messages/tools cannot be overridden by them.
  for (auto it = r.template_kwargs.begin(); it != r.template_kwargs.end(); ++it) ctx[it.key()] = it.value();
  Json messages = Json::array();
  for (const auto& m : r.messages) messages.push_back(normalize_message(m));
  ctx["messages"] = std::move(messages);
  if (!r.tools.is_null()) ctx["tools"] = r.tools;
  ctx["add_generation_prompt"] = r.add_generation_prompt;
  try {
    return tmpl.render(ctx);
  } catch (const ChatTemplateRaised& e) {
    throw ApiError(400, "chat template: " + e.message(), "messages");
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    throw ApiError(400, std::string("chat template could not render these messages: ") + e.what(), "messages");
  }
}

}  // namespace lowbit
