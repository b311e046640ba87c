#include "server/openai_responses.h"

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace lowbit {

Json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"completion_tokens", u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

std::string token_text(const Tokenizer& tok, int32_t id) {
  const int32_t one[1] = {id};
  return tok.decode(one, false);
}

namespace {
Json bytes_of(const std::string& raw) {
  Json b = Json::array();
  for (unsigned char c : raw) b.push_back(int(c));
  return b;
}

Json chat_logprob_entry(const Tokenizer& tok, int32_t id, float logprob) {
  const std::string raw = token_text(tok, id);
  return {{"token", utf8::repair(raw)}, {"logprob", logprob}, {"bytes", bytes_of(raw)}};
}

Json header_json(const ResponseHeader& h, const char* object) {
  return {{"id", h.id}, {"object", object}, {"created", h.created}, {"model", h.model}};
}
}  // namespace

Json chat_logprobs_json(const Tokenizer& tok, const std::vector<OutputToken>& tokens) {
  Json content = Json::array();
  for (const auto& t : tokens) {
    Json e = chat_logprob_entry(tok, t.id, t.logprob);
    Json top = Json::array();
    for (const auto& alt : t.top) top.push_back(chat_logprob_entry(tok, alt.id, alt.logprob));
    e["top_logprobs"] = std::move(top);
    content.push_back(std::move(e));
  }
  return {{"content", std::move(content)}};
}

Json completion_logprobs_json(const Tokenizer& tok, const std::vector<OutputToken>& tokens, size_t offset,
                              bool with_top) {
  Json toks = Json::array(), lps = Json::array(), tops = Json::array(), offsets = Json::array();
  for (const auto& t : tokens) {
    const std::string s = utf8::repair(token_text(tok, t.id));
    toks.push_back(s);
    lps.push_back(t.logprob);
    offsets.push_back(offset);
    offset += s.size();
    if (with_top) {
      Json top = Json::object();
      for (const auto& alt : t.top) top[utf8::repair(token_text(tok, alt.id))] = alt.logprob;
      tops.push_back(std::move(top));
    } else {
      tops.push_back(nullptr);
    }
  }
  return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

Json tool_calls_json(const std::vector<ToolCall>& calls, int first_index, bool streaming) {
  Json out = Json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    Json c = Json::object();
    if (streaming) c["index"] = first_index + int(i);
    c["id"] = calls[i].id;
    c["type"] = "function";
    c["function"] = {{"name", calls[i].name}, {"arguments", calls[i].arguments}};
    out.push_back(std::move(c));
  }
  return out;
}

Json chat_completion_json(const ResponseHeader& h, const std::vector<ChatChoice>& choices, const Usage& u) {
  Json j = header_json(h, "chat.completion");
  Json arr = Json::array();
  for (const auto& c : choices) {
    Json msg = {{"role", "assistant"}};
    msg["content"] = c.content.empty() && !c.tool_calls.empty() ? Json(nullptr) : Json(c.content);
    msg["reasoning_content"] = c.reasoning.empty() ? Json(nullptr) : Json(c.reasoning);
    msg["tool_calls"] = c.tool_calls.empty() ? Json(nullptr) : tool_calls_json(c.tool_calls, 0, false);
    arr.push_back({{"index", c.index},
                   {"message", std::move(msg)},
                   {"logprobs", c.logprobs},
                   {"finish_reason", c.finish_reason.empty() ? Json(nullptr) : Json(c.finish_reason)},
                   {"matched_stop", c.matched_stop}});
  }
  j["choices"] = std::move(arr);
  j["usage"] = usage_json(u);
  return j;
}

Json chat_chunk_json(const ResponseHeader& h, int index, Json delta, const Json& logprobs,
                     const std::string& finish_reason, bool usage_null) {
  Json j = header_json(h, "chat.completion.chunk");
  j["choices"] = Json::array({{{"index", index},
                               {"delta", std::move(delta)},
                               {"logprobs", logprobs},
                               {"finish_reason", finish_reason.empty() ? Json(nullptr) : Json(finish_reason)}}});
  if (usage_null) j["usage"] = nullptr;
  return j;
}

Json usage_chunk_json(const ResponseHeader& h, const char* object, const Usage& u) {
  Json j = header_json(h, object);
  j["choices"] = Json::array();
  j["usage"] = usage_json(u);
  return j;
}

Json completion_json(const ResponseHeader& h, const std::vector<TextChoice>& choices, const Usage& u) {
  Json j = header_json(h, "text_completion");
  Json arr = Json::array();
  for (const auto& c : choices)
    arr.push_back({{"index", c.index},
                   {"text", c.text},
                   {"logprobs", c.logprobs},
                   {"finish_reason", c.finish_reason.empty() ? Json(nullptr) : Json(c.finish_reason)},
                   {"matched_stop", c.matched_stop}});
  j["choices"] = std::move(arr);
  j["usage"] = usage_json(u);
  return j;
}

Json completion_chunk_json(const ResponseHeader& h, int index, const std::string& text, const Json& logprobs,
                           const std::string& finish_reason, bool usage_null) {
  Json j = header_json(h, "text_completion");
  j["choices"] = Json::array({{{"index", index},
                               {"text", text},
                               {"logprobs", logprobs},
                               {"finish_reason", finish_reason.empty() ? Json(nullptr) : Json(finish_reason)}}});
  if (usage_null) j["usage"] = nullptr;
  return j;
}

Json generate_json(const Tokenizer& tok, const GenerateOutput& g) {
  Json meta = {{"id", g.id},
               {"finish_reason", g.finish_reason.empty() ? Json(nullptr)
                                                         : Json{{"type", g.finish_reason}, {"matched", g.matched}}},
               {"prompt_tokens", g.prompt_tokens},
               {"completion_tokens", g.completion_tokens},
               {"cached_tokens", g.cached_tokens},
               {"e2e_latency", g.e2e_latency}};
  if (g.logprobs) {
    // SGLang: output_token_logprobs = [[logprob, id, text], ...]; output_top_logprobs likewise.
    Json lps = Json::array(), tops = Json::array();
    for (const auto& t : *g.logprobs) {
      lps.push_back(Json::array({t.logprob, t.id, nullptr}));
      Json top = Json::array();
      for (const auto& alt : t.top) top.push_back(Json::array({alt.logprob, alt.id, nullptr}));
      tops.push_back(std::move(top));
    }
    meta["output_token_logprobs"] = std::move(lps);
    meta["output_top_logprobs"] = std::move(tops);
  }
  Json j = {{"text", g.text}, {"output_ids", g.output_ids}, {"meta_info", std::move(meta)}};
  if (g.index >= 0) j["index"] = g.index;
  return j;
}

}  // namespace lowbit
