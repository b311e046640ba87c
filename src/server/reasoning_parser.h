// The qwen3 reasoning parser: splits model text into the thinking part (between <think> and
// </think>) and the answer, as SGLang's --reasoning-parser qwen3 does, one streamed piece at a
// time. Tags may arrive split across tokens ("<th" + "ink>"), so a piece's end that could
// still become a tag is held back until the next piece decides it.
//
// Qwen3 writes "<think>\n…\n</think>\n\n" first; with enable_thinking=false its template puts
// an empty think block into the prompt and the output has no tags at all (all content).
// Templates that open the block in the prompt (Qwen3-Thinking-2507) make the output start
// inside it: pass starts_in_reasoning.
#pragma once

#include <string>
#include <string_view>

namespace lowbit {

class ReasoningParser {
 public:
  struct Delta {
    std::string reasoning, content;
  };
  explicit ReasoningParser(bool starts_in_reasoning = false);
  Delta push(std::string_view text);
  // End of output: releases what was held back (an unclosed think block is all reasoning).
  Delta finish();

  // True when a rendered prompt ends inside an opened <think> block.
  static bool prompt_opens_reasoning(std::string_view prompt);

 private:
  enum class State { kStart, kReasoning, kContent };
  void emit_reasoning(Delta& d, std::string_view text);
  void emit_content(Delta& d, std::string_view text);

  State state_;
  std::string held_;
  bool reasoning_started_ = false;  // leading blank lines of the thinking part are dropped
  bool after_think_ = false;        // content follows </think>: drop its leading blank lines
  bool content_started_ = false;
};

}  // namespace lowbit
