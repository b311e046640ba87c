// A model's own chat template (the Jinja source in tokenizer_config.json), rendered in C++ so
// prompts match what transformers' apply_chat_template produces for the same messages.
//
// Supported: the Jinja subset chat templates use (if/elif/else, for with loop.* / else /
// filters / break / continue, set incl. namespace attributes and block set, macro and call,
// filter and with blocks, whitespace control, Python-compatible expressions, string / dict
// methods, the common filters and tests, raise_exception, strftime_now). Anything else
// (include, extends, unsupported filters, ...) is an Error naming LABEL:LINE:COL.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/error.h"

namespace lowbit {

namespace jinja {
struct Template;
class Value;
}  // namespace jinja

// The template called raise_exception(message). what() is "LABEL:LINE:COL: raise_exception:
// <message>"; message() is the template's own text, meant for the API client (an HTTP 400).
class ChatTemplateRaised : public Error {
 public:
  ChatTemplateRaised(const std::string& what, std::string message)
      : Error(what), message_(std::move(message)) {}
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

class ChatTemplate {
 public:
  // Parses once; throws Error("LABEL:LINE:COL: ...") on syntax it does not support.
  explicit ChatTemplate(std::string source, std::string label = "chat_template");

  // Renders as transformers' apply_chat_template(messages, tools=..., tokenize=False,
  // add_generation_prompt=..., **kwargs) does (transformers 5.17, the version the project
  // pins). `context` holds "messages" and optionally "tools", "documents",
  // "add_generation_prompt", "enable_thinking", ... . As in transformers, special_tokens() are
  // added under keys the context does not set, tools and documents default to None and
  // add_generation_prompt to false; messages are passed through unchanged (null fields stay
  // None: Qwen3's template then fails on "content": null, as transformers 5.17 does; newer
  // transformers drop null fields first).
  // Use ordered_json when key order matters (a tool's JSON schema is printed in the order given;
  // nlohmann::json sorts keys).
  std::string render(const nlohmann::ordered_json& context) const;
  std::string render(const nlohmann::json& context) const;

  // Renders with exactly `variables` as the template's globals: no chat normalisation, no
  // special tokens. For tests and non-chat uses.
  std::string render_jinja(const nlohmann::ordered_json& variables) const;

  // Reads a tokenizer_config.json: chat_template as a string or a list of {"name","template"}
  // ("default" is used; "tool_use" when the context has tools), or a chat_template.jinja file
  // next to it (which transformers prefers); bos/eos/unk/sep/pad/cls/mask tokens as strings or
  // {"content": ...}. Throws an Error naming the file if there is no template.
  static ChatTemplate from_tokenizer_config(const std::filesystem::path& tokenizer_config_json);

  // A model folder's template, found as transformers finds it: DIR/chat_template.jinja first
  // (transformers >= 4.43 saves the template there, no longer in the config), else the
  // chat_template of DIR/tokenizer_config.json; special tokens come from tokenizer_config.json
  // when it exists. nullopt when the folder has no template at all (a base model); throws an
  // Error naming the file when one is present but unreadable or invalid.
  static std::optional<ChatTemplate> from_model_dir(const std::filesystem::path& dir);

  // The special-token strings to pass in the context, as transformers' special_tokens_map:
  // {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}; null tokens are absent.
  const nlohmann::ordered_json& special_tokens() const { return special_tokens_; }
  std::string bos_token() const;  // "" if the tokenizer has none
  std::string eos_token() const;
  const std::string& label() const { return label_; }

 private:
  std::string render_value(const jinja::Template& tmpl, const jinja::Value& variables) const;
  std::string render_chat(const jinja::Value& context) const;

  std::string label_;
  std::shared_ptr<const jinja::Template> template_;
  std::shared_ptr<const jinja::Template> tool_use_template_;  // may be null
  nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();
};

}  // namespace lowbit
