// lowbit tokenize: stdin text → JSON array of ids (no special tokens added), or with --chat a
// JSON list of messages → the rendered chat template with the generation prompt.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>

#include "chat/chat_template.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tools/commands.h"
#include "tools/model_session.h"

namespace lowbit {

namespace {
struct TokenizeArgs {
  std::filesystem::path model_path;
  bool chat = false, no_thinking = false, ids = false;
};

int run(const TokenizeArgs& a) {
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  const Tokenizer tok = Tokenizer::from_dir(a.model_path);
  std::string text = input;
  if (a.chat) {
    auto found = ChatTemplate::from_model_dir(a.model_path);
    if (!found) fail("{}: no chat template (neither chat_template.jinja nor a chat_template in tokenizer_config.json)",
                     a.model_path.string());
    const ChatTemplate& tmpl = *found;
    nlohmann::json ctx = {{"messages", parse_messages(input)}, {"add_generation_prompt", true}};
    if (a.no_thinking) ctx["enable_thinking"] = false;
    text = tmpl.render(ctx);
    if (!a.ids) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      return 0;
    }
  }
  nlohmann::json out = tok.encode(text, false);
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
}  // namespace

CommandFn add_tokenize_command(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  app.add_option("--model-path,-m", a->model_path, "Model folder with tokenizer.json")->required()->check(CLI::ExistingDirectory);
  app.add_flag("--chat", a->chat, "stdin is a JSON list of messages: print the rendered chat template");
  app.add_flag("--no-thinking", a->no_thinking, "With --chat: pass enable_thinking=false");
  app.add_flag("--ids", a->ids, "With --chat: print the ids of the rendered text instead of the text");
  return [a] { return run(*a); };
}

}  // namespace lowbit
