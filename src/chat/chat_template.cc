#include "chat/chat_template.h"

#include <fmt/format.h>

#include <array>
#include <fstream>
#include <sstream>

#include "chat/jinja_interpreter.h"
#include "chat/jinja_lexer.h"
#include "chat/jinja_parser.h"

namespace lowbit {
namespace {

using jinja::Dict;
using jinja::Value;

[[noreturn]] void throw_positioned(const std::string& label, std::string_view normalized_source,
                                   const jinja::SourceError& e) {
  const auto [line, column] = jinja::line_column(normalized_source, e.offset());
  const std::string what = fmt::format("{}:{}:{}: {}", label, line, column, e.what());
  if (e.raised()) throw ChatTemplateRaised(what, *e.raised());
  throw Error(what);
}

std::shared_ptr<const jinja::Template> compile(const std::string& source,
                                               const std::string& label) {
  try {
    jinja::Template tmpl = jinja::parse_template(source);
    tmpl.label = label;
    return std::make_shared<const jinja::Template>(std::move(tmpl));
  } catch (const jinja::SourceError& e) {
    throw_positioned(label, jinja::normalize_source(source), e);
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// A special token is a string or an AddedToken dict {"content": ...}.
std::optional<std::string> token_text(const nlohmann::ordered_json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) {
    return v["content"].get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

ChatTemplate::ChatTemplate(std::string source, std::string label)
    : label_(std::move(label)), template_(compile(source, label_)) {}

std::string ChatTemplate::render_value(const jinja::Template& tmpl, const Value& variables) const {
  try {
    return jinja::Interpreter(tmpl).render(variables.as_dict());
  } catch (const jinja::SourceError& e) {
    throw_positioned(tmpl.label, tmpl.source, e);
  }
}

std::string ChatTemplate::render_chat(const Value& context) const {
  if (!context.is_dict()) fail("{}: the render context must be a JSON object", label_);
  Dict vars;
  for (const auto& [k, v] : special_tokens_.items())
    vars.set(Value(k), Value(v.get<std::string>()));
  for (const auto& [k, v] : context.as_dict().entries()) vars.set(k, v);
  for (const char* key : {"tools", "documents"}) {
    if (!vars.find(std::string_view(key))) vars.set(Value(key), Value(jinja::None{}));
  }
  if (!vars.find(std::string_view("add_generation_prompt"))) {
    vars.set(Value("add_generation_prompt"), Value(false));
  }
  const Value* tools = vars.find(std::string_view("tools"));
  const bool use_tool_template = tool_use_template_ && !tools->is_none();
  return render_value(use_tool_template ? *tool_use_template_ : *template_,
                      Value::dict(std::move(vars)));
}

std::string ChatTemplate::render(const nlohmann::ordered_json& context) const {
  try {
    return render_chat(jinja::from_json(context));
  } catch (const jinja::EvalError& e) {
    fail("{}: {}", label_, e.what());
  }
}

std::string ChatTemplate::render(const nlohmann::json& context) const {
  try {
    return render_chat(jinja::from_json(context));
  } catch (const jinja::EvalError& e) {
    fail("{}: {}", label_, e.what());
  }
}

std::string ChatTemplate::render_jinja(const nlohmann::ordered_json& variables) const {
  if (!variables.is_object()) fail("{}: the render variables must be a JSON object", label_);
  try {
    return render_value(*template_, jinja::from_json(variables));
  } catch (const jinja::EvalError& e) {
    fail("{}: {}", label_, e.what());
  }
}

std::string ChatTemplate::bos_token() const {
  return special_tokens_.value("bos_token", std::string());
}

std::string ChatTemplate::eos_token() const {
  return special_tokens_.value("eos_token", std::string());
}

ChatTemplate ChatTemplate::from_tokenizer_config(const std::filesystem::path& config_path) {
  nlohmann::ordered_json config;
  try {
    config = nlohmann::ordered_json::parse(read_file(config_path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON: {}", config_path.string(), e.what());
  }
  if (!config.is_object()) fail("{}: expected a JSON object", config_path.string());

  // transformers prefers a chat_template.jinja saved next to the config.
  const std::filesystem::path dir = config_path.parent_path();
  std::string source;
  std::string label = "chat_template";
  std::optional<std::string> tool_use;
  if (std::filesystem::exists(dir / "chat_template.jinja")) {
    source = read_file(dir / "chat_template.jinja");
    label = (dir / "chat_template.jinja").string();
  } else if (config.contains("chat_template") && config["chat_template"].is_string()) {
    source = config["chat_template"].get<std::string>();
  } else if (config.contains("chat_template") && config["chat_template"].is_array()) {
    bool has_default = false;
    for (const auto& entry : config["chat_template"]) {
      if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
          !entry["template"].is_string()) {
        fail("{}: chat_template list entries need \"name\" and \"template\"", config_path.string());
      }
      if (entry["name"] == "default") {
        source = entry["template"].get<std::string>();
        has_default = true;
      } else if (entry["name"] == "tool_use") {
        tool_use = entry["template"].get<std::string>();
      }
    }
    if (!has_default) {
      fail("{}: chat_template lists named templates but none is named \"default\"",
           config_path.string());
    }
    label = "chat_template[default]";
  } else {
    fail("{}: no chat_template (and no chat_template.jinja next to it)", config_path.string());
  }

  ChatTemplate result(std::move(source), label);
  if (tool_use) result.tool_use_template_ = compile(*tool_use, "chat_template[tool_use]");
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                          "cls_token", "mask_token"}) {
    if (!config.contains(key)) continue;
    if (const auto text = token_text(config[key])) result.special_tokens_[key] = *text;
  }
  return result;
}

std::optional<ChatTemplate> ChatTemplate::from_model_dir(const std::filesystem::path& dir) {
  const std::filesystem::path config_path = dir / "tokenizer_config.json";
  const std::filesystem::path jinja_path = dir / "chat_template.jinja";
  if (std::filesystem::exists(config_path)) {
    // from_tokenizer_config already prefers the .jinja file; only a config with neither a
    // template nor a .jinja beside it means "no template" rather than an error.
    const auto config = nlohmann::ordered_json::parse(read_file(config_path), nullptr, false);
    if (!std::filesystem::exists(jinja_path) && config.is_object() && !config.contains("chat_template")) {
      return std::nullopt;
    }
    return from_tokenizer_config(config_path);
  }
  if (!std::filesystem::exists(jinja_path)) return std::nullopt;
  return ChatTemplate(read_file(jinja_path), jinja_path.string());
}

}  // namespace lowbit
