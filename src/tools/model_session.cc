#include "tools/model_session.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/runtime_options.h"
#include "formats/format.h"
#include "tools/progress_bar.h"

namespace lowbit {

std::string online_quantization_help() {
  std::string help = "Quantize a float checkpoint's linear layers at load (embeddings, norms, lm_head stay float):";
  for (const auto& [name, what] : online_quantization_methods()) help += "\n  " + name + ": " + what;
  return help;
}

void add_load_options(CLI::App& app, LoadOptions& o) {
  app.add_option("--model-path,-m", o.model_path, "Hugging Face model folder (config.json, *.safetensors, tokenizer.json)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--threads,-t", o.threads, "Worker threads (default: all hardware threads)")->check(CLI::NonNegativeNumber);
  app.add_option("--quantization", o.quantization, online_quantization_help());
  app.add_flag("--quiet,-q", o.quiet, "No load progress or timing lines on stderr");
  app.add_option("--speculative-algorithm", o.speculative_algorithm,
                 "NEXTN: speculative decoding with the model's MTP head (Qwen3-Next)");
  app.add_option("--speculative-num-steps", o.speculative_num_steps, "Draft steps per verify (NEXTN: 1)");
  app.add_option("--speculative-eagle-topk", o.speculative_eagle_topk, "Draft branches (NEXTN: 1)");
  app.add_option("--speculative-num-draft-tokens", o.speculative_num_draft_tokens,
                 "Tokens per verify: the pending one and the draft (NEXTN: 2)");
  app.add_option("--speculative-draft-model-path", o.speculative_draft_model_path,
                 "Folder whose checkpoint holds the mtp.* tensors (e.g. the float model of a msmodelslim "
                 "checkpoint, which drops them)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--speculative-adaptive", o.speculative_adaptive,
                 "generate/chat/serve/bench: draft only while the measured acceptance and step times say it pays "
                 "(false: every step)")
      ->capture_default_str();
  add_tp_options(app, o.tp);
  add_numeric_policy_options(app);
}

DraftHeadOptions LoadOptions::draft_head() const {
  DraftHeadOptions d;
  if (speculative_algorithm.empty()) {
    if (!speculative_draft_model_path.empty())
      fail("--speculative-draft-model-path needs --speculative-algorithm NEXTN");
    return d;
  }
  if (speculative_algorithm != "NEXTN")
    fail("--speculative-algorithm {} is not supported (NEXTN: Qwen3-Next's MTP head)", speculative_algorithm);
  if (speculative_num_steps != 1 || speculative_eagle_topk != 1 || speculative_num_draft_tokens != 2)
    fail("--speculative-algorithm NEXTN runs with --speculative-num-steps 1 --speculative-eagle-topk 1 "
         "--speculative-num-draft-tokens 2 (got {}, {}, {})",
         speculative_num_steps, speculative_eagle_topk, speculative_num_draft_tokens);
  d.load = true;
  d.from = speculative_draft_model_path;
  return d;
}

void add_numeric_policy_options(CLI::App& app) {
  // Bound to the process-wide options (environment LOWBIT_* already applied; flags win).
  RuntimeOptions& r = runtime_options();
  app.add_option("--kv-cache-dtype", r.kv_cache_dtype,
                 "KV cache type: auto (the checkpoint's: bf16 for BF16/F16 models, f32 for F32), bf16, f32, fp8_e4m3")
      ->check(CLI::IsMember({"auto", "bf16", "f32", "fp8_e4m3"}))
      ->capture_default_str();
  app.add_option("--float-activations", r.float_activations,
                 "Activations into BF16 weights: auto (bf16 where the CPU has AVX512-BF16), bf16, or f32 (exact)")
      ->check(CLI::IsMember({"auto", "bf16", "f32"}))
      ->capture_default_str();
  app.add_option("--w4a16-activations", r.w4a16_activations,
                 "W4A16: auto (bf16 when --float-activations resolves to bf16, else float), float (fp32, exact), "
                 "bf16 (rounded to BF16, as SGLang/vLLM's BF16 models feed their W4A16 kernels; vdpbf16ps where the "
                 "CPU has AVX512-BF16) or int8 (per-token int8 activations on VNNI/AMX)")
      ->check(CLI::IsMember({"auto", "int8", "bf16", "float"}))
      ->capture_default_str();
  app.add_option("--float-weights", r.float_weights,
                 "Float weights of 2 MiB or more: copy (into huge pages at load; faster decode) or mapped (read in "
                 "place from the checkpoint's mapping)")
      ->check(CLI::IsMember({"copy", "mapped"}))
      ->capture_default_str();
  app.add_flag("--quantize-lm-head", r.quantize_lm_head,
               "Quantize lm_head too (int8 per-channel weights, per-token int8 activations) when the model is quantized");
}

void add_sampling_options(CLI::App& app, SamplingOptions& o) {
  app.add_option("--max-new-tokens,-n", o.max_new_tokens, "Maximum tokens to generate");
  app.add_option("--temperature", o.temperature, "0 = greedy (default: generation_config.json, else greedy)");
  app.add_option("--top-k", o.top_k, "Keep the k most likely tokens (0 = off)");
  app.add_option("--top-p", o.top_p, "Nucleus sampling mass (1 = off)");
  app.add_option("--min-p", o.min_p, "Drop tokens below min_p × the top probability (0 = off)");
  app.add_option("--repetition-penalty", o.repetition_penalty, "CTRL-style penalty over prompt and output (1 = off)");
  app.add_option("--presence-penalty", o.presence_penalty, "OpenAI-style presence penalty over output");
  app.add_option("--frequency-penalty", o.frequency_penalty, "OpenAI-style frequency penalty over output");
  app.add_option("--seed", o.seed, "Random seed (default: random)");
  app.add_option("--stop", o.stop, "Stop string (repeatable); not included in the output");
  app.add_option("--stop-token-id", o.stop_token_ids, "Extra stop token id (repeatable)");
  app.add_flag("--ignore-eos", o.ignore_eos, "Do not stop at the model's end-of-sequence tokens");
}

ModelSession::ModelSession(const LoadOptions& o, TpGroup* tp)
    : pool_(o.threads), tokenizer_(Tokenizer::from_dir(o.model_path)), model_path_(o.model_path) {
  const auto t0 = std::chrono::steady_clock::now();
  chat_template_ = ChatTemplate::from_model_dir(o.model_path);
  ProgressBar bar("loading", !o.quiet && ::isatty(STDERR_FILENO));
  model_ = DecoderModel::load(
      o.model_path, [&](int64_t done, int64_t total) { bar.update(done, total, "layers"); }, o.quantization,
      o.draft_head(), tp);
  bar.finish();
  generator_ = std::make_unique<Generator>(
      *model_, tokenizer_, pool_, 512,
      o.speculative_adaptive ? Generator::Speculation::kAdaptive : Generator::Speculation::kAlways);
  load_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!o.quiet)
    std::fprintf(stderr, "loaded %s in %.2f s: %s; %.1f MiB of weights; %d threads, %s\n", o.model_path.c_str(),
                 load_seconds_, model_->describe().c_str(), double(model_->weight_bytes()) / (1 << 20), pool_.size(),
                 cpu_features().describe().c_str());
}

std::string ModelSession::render_chat(const nlohmann::json& messages, bool thinking) const {
  if (!chat_template_)
    fail("{}: no chat template (neither chat_template.jinja nor a chat_template in tokenizer_config.json), so "
         "messages cannot be rendered; use --prompt",
         model_path_.string());
  nlohmann::json ctx = {{"messages", messages}, {"add_generation_prompt", true}};
  if (!thinking) ctx["enable_thinking"] = false;
  return chat_template_->render(ctx);
}

GenerationRequest ModelSession::make_request(std::vector<int32_t> prompt, const SamplingOptions& o) const {
  const auto& gen = model_->config().generation;
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.sampling = SamplingParams::from_generation_defaults(gen);
  auto& s = r.sampling;
  if (o.temperature) s.temperature = *o.temperature;
  if (o.top_k) s.top_k = *o.top_k;
  if (o.top_p) s.top_p = *o.top_p;
  if (o.min_p) s.min_p = *o.min_p;
  if (o.repetition_penalty) s.repetition_penalty = *o.repetition_penalty;
  s.presence_penalty = o.presence_penalty;
  s.frequency_penalty = o.frequency_penalty;
  s.seed = o.seed ? *o.seed : std::random_device{}();
  s.validate();
  r.max_new_tokens = o.max_new_tokens > 0 ? o.max_new_tokens : gen.max_new_tokens.value_or(256);
  r.stop_strings = o.stop;
  r.stop_token_ids = o.stop_token_ids;
  r.ignore_eos = o.ignore_eos;
  // The tokenizer's eos joins the config's eos ids (which the generator adds) unless ignored.
  if (auto eos = tokenizer_.eos_id(); eos && !r.ignore_eos) r.stop_token_ids.push_back(*eos);
  return r;
}

nlohmann::json parse_messages(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) fail("--messages: not valid JSON");
  if (!j.is_array() || j.empty()) fail("--messages: expected a non-empty JSON array of messages");
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& m = j[i];
    if (!m.is_object()) fail("--messages[{}]: expected an object", i);
    if (!m.contains("role") || !m["role"].is_string()) fail("--messages[{}]: missing string field 'role'", i);
    if (m.contains("content") && !m["content"].is_string() && !m["content"].is_null())
      fail("--messages[{}].content: expected a string", i);
  }
  return j;
}

}  // namespace lowbit
