// Test driver: renders chat templates for the Python oracle tests.
//
//   chat_template_tool CONFIG_JSON < context.json        one rendering, printed verbatim
//   chat_template_tool --jsonl [CONFIG_JSON] < cases     one JSON object per line:
//       {"context": {...}, "template": "optional inline source", "raw": false}
//     answers one line each: {"output": "..."} or {"error": "...", "raised": "..."}.
//   "raw": true renders with exactly the given variables (ChatTemplate::render_jinja).
#include <iostream>
#include <iterator>
#include <optional>
#include <string>

#include "chat/chat_template.h"

namespace {

nlohmann::ordered_json render_case(const std::optional<lowbit::ChatTemplate>& config_template,
                                   const nlohmann::ordered_json& request) {
  nlohmann::ordered_json answer;
  try {
    std::optional<lowbit::ChatTemplate> inline_template;
    if (request.contains("template")) {
      inline_template.emplace(request["template"].get<std::string>());
    }
    const lowbit::ChatTemplate* tmpl = inline_template   ? &*inline_template
                                       : config_template ? &*config_template
                                                         : nullptr;
    if (!tmpl) throw lowbit::Error("no template: pass a tokenizer_config.json or \"template\"");
    const auto context = request.value("context", nlohmann::ordered_json::object());
    answer["output"] =
        request.value("raw", false) ? tmpl->render_jinja(context) : tmpl->render(context);
  } catch (const lowbit::ChatTemplateRaised& e) {
    answer["error"] = e.what();
    answer["raised"] = e.message();
  } catch (const std::exception& e) {
    answer["error"] = e.what();
  }
  return answer;
}

}  // namespace

int main(int argc, char** argv) {
  bool jsonl = false;
  std::optional<std::string> config_path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--jsonl") {
      jsonl = true;
    } else {
      config_path = arg;
    }
  }
  try {
    std::optional<lowbit::ChatTemplate> config_template;
    if (config_path) config_template = lowbit::ChatTemplate::from_tokenizer_config(*config_path);
    if (!jsonl) {
      if (!config_template) {
        std::cerr << "usage: chat_template_tool [--jsonl] [tokenizer_config.json]\n";
        return 2;
      }
      const std::string input((std::istreambuf_iterator<char>(std::cin)),
                              std::istreambuf_iterator<char>());
      std::cout << config_template->render(nlohmann::ordered_json::parse(input));
      return 0;
    }
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.empty()) continue;
      nlohmann::ordered_json answer;
      try {
        answer = render_case(config_template, nlohmann::ordered_json::parse(line));
      } catch (const std::exception& e) {
        answer["error"] = std::string("bad request line: ") + e.what();
      }
      std::cout << answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
