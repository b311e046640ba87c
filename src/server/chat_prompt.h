// Turns a validated chat request into prompt text with the model's own chat template, as
// transformers' apply_chat_template(messages, tools=..., add_generation_prompt=True,
// **chat_template_kwargs) does, after the message clean-up vLLM and SGLang do: text parts
// joined into one string, a tool call's arguments JSON string turned into an object (Qwen's
// templates accept both; others expect the object).
#pragma once

#include <string>

#include "server/openai_protocol.h"

namespace lowbit {

class ChatTemplate;

// Throws ApiError 400 for a template's raise_exception (its message is for the client) and
// for render errors the request caused.
std::string render_chat_prompt(const ChatTemplate& tmpl, const ChatRequest& request);

}  // namespace lowbit
