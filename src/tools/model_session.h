// What every model-running subcommand needs: the model, its tokenizer and chat template,
// the thread pool, and the shared command-line options for loading and sampling.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "core/thread_pool.h"
#include "models/decoder.h"
#include "runtime/generator.h"
#include "tokenizer/tokenizer.h"
#include "tools/tp_launch.h"

namespace lowbit {

struct LoadOptions {
  std::filesystem::path model_path;
  int threads = 0;  // 0: all hardware threads
  bool quiet = false;
  std::string quantization;  // online quantization method, empty: as the checkpoint is
  // SGLang's speculative-decoding flags. NEXTN (Qwen3-Next's MTP head) with 1 step, top-1 and
  // 2 draft tokens, the configuration SGLang runs it in, is what is implemented.
  std::string speculative_algorithm;
  int speculative_num_steps = 1, speculative_eagle_topk = 1, speculative_num_draft_tokens = 2;
  std::filesystem::path speculative_draft_model_path;
  bool speculative_adaptive = true;  // generate, serve: draft only while it pays (runtime/spec_governor.h)
  TpCliOptions tp;                   // --tp-size, --quantize-tp-communications
  // Throws Error naming the flag when the combination is not one we run.
  DraftHeadOptions draft_head() const;
};
void add_load_options(CLI::App& app, LoadOptions& o);
// --kv-cache-dtype, --float-activations, --w4a16-activations, --quantize-lm-head: bound to
// runtime_options() (src/core/runtime_options.h); included in add_load_options.
void add_numeric_policy_options(CLI::App& app);
// The --quantization option's help text: every online method with its description.
std::string online_quantization_help();

struct SamplingOptions {
  int64_t max_new_tokens = -1;  // -1: generation_config's max_new_tokens, else 256
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int64_t> top_k;
  float presence_penalty = 0, frequency_penalty = 0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
};
void add_sampling_options(CLI::App& app, SamplingOptions& o);

class ModelSession {
 public:
  // Loads tokenizer, chat template (if the folder has one) and model, with a progress bar on
  // a terminal and a one-line summary otherwise.
  // `tp`: this rank's tensor-parallel group (rank 0), null for one process.
  explicit ModelSession(const LoadOptions& options, TpGroup* tp = nullptr);

  const Tokenizer& tokenizer() const { return tokenizer_; }
  DecoderModel& model() { return *model_; }
  ThreadPool& pool() { return pool_; }
  Generator& generator() { return *generator_; }
  double load_seconds() const { return load_seconds_; }

  // Renders messages (a JSON array) through the model's own chat template with the
  // generation prompt; enable_thinking=false is passed only when thinking is disabled.
  std::string render_chat(const nlohmann::json& messages, bool thinking) const;
  GenerationRequest make_request(std::vector<int32_t> prompt, const SamplingOptions& o) const;

 private:
  ThreadPool pool_;
  Tokenizer tokenizer_;
  std::optional<ChatTemplate> chat_template_;
  std::filesystem::path model_path_;
  std::unique_ptr<DecoderModel> model_;
  std::unique_ptr<Generator> generator_;
  double load_seconds_ = 0;
};

// Parses a --messages value: a JSON array of {"role", "content"} objects. Errors name the
// offending element.
nlohmann::json parse_messages(const std::string& text);

}  // namespace lowbit
