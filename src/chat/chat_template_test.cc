// ChatTemplate as the engine uses it: loading tokenizer_config.json, transformers' input
// normalisation, and golden Qwen3 renderings (taken from transformers' apply_chat_template;
// tests/python/test_chat_template_oracle.py compares many more conversations live).
#include "chat/chat_template.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <thread>
#include <vector>

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

fs::path qwen3_config() {
  for (const fs::path& dir :
       {fs::path(LOWBIT_SOURCE_DIR) / ".." / "shared" / "data" / "qwen3-tokenizer",
        fs::path(LOWBIT_SOURCE_DIR) / "data" / "qwen3-tokenizer"}) {
    if (fs::exists(dir / "tokenizer_config.json")) return dir / "tokenizer_config.json";
  }
  return {};
}

class TempDir {
 public:
  TempDir()
      : path_(fs::temp_directory_path() /
              ("lowbit_chat_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return path_ / name;
  }

 private:
  static inline std::atomic<int> counter_{0};
  fs::path path_;
};

TEST(ChatTemplate, Qwen3ToolCallConversationMatchesTransformers) {
  const fs::path config = qwen3_config();
  ASSERT_FALSE(config.empty()) << "Qwen3 tokenizer_config.json not found";
  const ChatTemplate tmpl = ChatTemplate::from_tokenizer_config(config);
  EXPECT_EQ(tmpl.eos_token(), "<|im_end|>");
  EXPECT_EQ(tmpl.bos_token(), "");
  const Json context = Json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Time in Paris?"},
      {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_time", "arguments": {"city": "Paris"}}}]},
      {"role": "tool", "content": "12:00"}],
    "tools": [{"type": "function", "function": {"name": "get_time",
      "description": "Current time in a city", "parameters": {"type": "object",
      "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
    "add_generation_prompt": true})");
  EXPECT_EQ(
      tmpl.render(context),
      "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to "
      "assist with the user query.\n\nYou are provided with function signatures within "
      "<tools></tools> XML tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": "
      "\"get_time\", \"description\": \"Current time in a city\", \"parameters\": {\"type\": "
      "\"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": "
      "[\"city\"]}}}\n</tools>\n\nFor each function call, return a json object with function "
      "name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
      "<function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
      "<|im_start|>user\nTime in Paris?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n"
      "{\"name\": \"get_time\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
      "<|im_start|>user\n<tool_response>\n12:00\n</tool_response><|im_end|>\n"
      "<|im_start|>assistant\n");
}

TEST(ChatTemplate, Qwen3ReasoningAndThinkingSwitch) {
  const fs::path config = qwen3_config();
  ASSERT_FALSE(config.empty());
  const ChatTemplate tmpl = ChatTemplate::from_tokenizer_config(config);
  EXPECT_EQ(tmpl.render(Json::parse(R"({"messages": [{"role": "user", "content": "2+2?"},
              {"role": "assistant", "content": "4", "reasoning_content": "add"}]})")),
            "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\nadd\n</think>\n\n4"
            "<|im_end|>\n");
  // Null fields reach the template as None (transformers 5.17): a null reasoning_content is
  // ignored, a null content fails like Python's `'</think>' in None`.
  const std::string call = R"("tool_calls": [{"function": {"name": "now", "arguments": "{}"}}])";
  EXPECT_EQ(tmpl.render(Json::parse(R"({"messages": [{"role": "user", "content": "t?"},
      {"role": "assistant", "content": "", "reasoning_content": null, )" +
                                    call + "}]}")),
            "<|im_start|>user\nt?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
            "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call><|im_end|>\n");
  EXPECT_THROW(tmpl.render(Json::parse(R"({"messages": [{"role": "user", "content": "t?"},
      {"role": "assistant", "content": null, )" +
                                       call + "}]}")),
               Error);
  const std::string user = R"({"role": "user", "content": "hi"})";
  EXPECT_EQ(
      tmpl.render(Json::parse("{\"messages\": [" + user +
                              "], \"add_generation_prompt\": true, \"enable_thinking\": false}")),
      "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // nlohmann::json (sorted keys) renders the same when order does not matter.
  EXPECT_EQ(tmpl.render(nlohmann::json::parse("{\"messages\": [" + user + "]}")),
            "<|im_start|>user\nhi<|im_end|>\n");
}

TEST(ChatTemplate, ContextDefaultsFollowTransformers) {
  const ChatTemplate tmpl(
      "{{ tools is none }} {{ documents is none }} {{ add_generation_prompt }} "
      "{{ eos_token }} {{ bos_token is defined }} {{ messages[0] | tojson }}");
  EXPECT_EQ(
      tmpl.render(Json::parse(R"({"messages": [{"role": "user", "content": null, "x": 1}]})")),
      "True True False  False {\"role\": \"user\", \"content\": null, \"x\": 1}");
}

TEST(ChatTemplate, LoadsTokenizerConfigVariants) {
  TempDir dir;
  const fs::path plain =
      dir.write("tokenizer_config.json",
                R"({"chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}",
          "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "unk_token": null})");
  const ChatTemplate tmpl = ChatTemplate::from_tokenizer_config(plain);
  EXPECT_EQ(tmpl.special_tokens().dump(), R"({"bos_token":"<s>","eos_token":"</s>"})");
  EXPECT_EQ(tmpl.render(Json::parse(R"({"messages": [{"role": "user", "content": "x"}]})")),
            "<s>x</s>");
  // Context keys win over special tokens.
  EXPECT_EQ(tmpl.render(Json::parse(R"({"messages": [{"content": "x"}], "eos_token": "E"})")),
            "<s>xE");

  TempDir named;
  const fs::path list =
      named.write("tokenizer_config.json",
                  R"({"chat_template": [{"name": "default", "template": "default"},
                            {"name": "tool_use", "template": "tools:{{ tools | length }}"}]})");
  const ChatTemplate both = ChatTemplate::from_tokenizer_config(list);
  EXPECT_EQ(both.render(Json::parse(R"({"messages": []})")), "default");
  EXPECT_EQ(both.render(Json::parse(R"({"messages": [], "tools": [{}, {}]})")), "tools:2");

  TempDir jinja_file;
  const fs::path cfg = jinja_file.write("tokenizer_config.json", R"({"chat_template": "config"})");
  jinja_file.write("chat_template.jinja", "from file\n");
  EXPECT_EQ(ChatTemplate::from_tokenizer_config(cfg).render(Json::parse(R"({"messages": []})")),
            "from file");
}

TEST(ChatTemplate, MissingTemplateNamesTheFile) {
  TempDir dir;
  const fs::path cfg = dir.write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  try {
    ChatTemplate::from_tokenizer_config(cfg);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(cfg.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no chat_template"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ChatTemplate::from_tokenizer_config(dir.write("bad.json", "{oops")), Error);
  EXPECT_THROW(ChatTemplate::from_tokenizer_config(dir.write("none.json", "[]")), Error);
}

// transformers >= 4.43 saves the template as chat_template.jinja and leaves it out of
// tokenizer_config.json; a model folder must still have a template then.
TEST(ChatTemplate, ModelDirPrefersChatTemplateJinja) {
  const Json messages = Json::parse(R"({"messages": [{"role": "user", "content": "x"}]})");
  TempDir only_jinja;
  only_jinja.write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  only_jinja.write("chat_template.jinja", "{{ messages[0].content }}{{ eos_token }}\n");
  const auto from_jinja = ChatTemplate::from_model_dir(only_jinja.path());
  ASSERT_TRUE(from_jinja);
  EXPECT_EQ(from_jinja->render(messages), "x</s>");
  EXPECT_NE(from_jinja->label().find("chat_template.jinja"), std::string::npos);

  TempDir both;
  both.write("tokenizer_config.json", R"({"chat_template": "config"})");
  both.write("chat_template.jinja", "file");
  EXPECT_EQ(ChatTemplate::from_model_dir(both.path())->render(messages), "file");

  TempDir config_only;
  config_only.write("tokenizer_config.json", R"({"chat_template": "config"})");
  EXPECT_EQ(ChatTemplate::from_model_dir(config_only.path())->render(messages), "config");

  TempDir no_config;
  no_config.write("chat_template.jinja", "bare");
  EXPECT_EQ(ChatTemplate::from_model_dir(no_config.path())->render(messages), "bare");

  TempDir base_model;
  base_model.write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  EXPECT_FALSE(ChatTemplate::from_model_dir(base_model.path()));
  TempDir empty;
  EXPECT_FALSE(ChatTemplate::from_model_dir(empty.path()));

  TempDir broken;
  broken.write("chat_template.jinja", "{% if %}");
  try {
    ChatTemplate::from_model_dir(broken.path());
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chat_template.jinja:1:"), std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, RendersConcurrently) {
  const ChatTemplate tmpl(
      "{% set ns = namespace(n=0) %}{% for m in messages %}"
      "{% set ns.n = ns.n + m.content | length %}{% endfor %}{{ ns.n }}");
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string content(static_cast<size_t>(t + i), 'x');
        const Json ctx = {{"messages", Json::array({{{"content", content}}, {{"content", "ab"}}})}};
        if (tmpl.render(ctx) != std::to_string(content.size() + 2)) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace lowbit
