// lowbit generate: one completion, streamed to stdout, with prefill/decode speed on stderr
// (or one JSON object with --json).
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "core/error.h"
#include "tools/commands.h"
#include "tools/model_session.h"

namespace lowbit {

namespace {
struct GenerateArgs {
  LoadOptions load;
  SamplingOptions sampling;
  std::string prompt, messages, prompt_ids;
  bool no_thinking = false, json = false;
};

// Peak resident set of the process so far (weights are mmap'd, so it counts touched pages).
double peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

std::vector<int32_t> parse_ids(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array()) fail("--prompt-ids: expected a JSON array of token ids");
  std::vector<int32_t> ids;
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_number_integer()) fail("--prompt-ids[{}]: expected an integer token id", i);
    ids.push_back(j[i].get<int32_t>());
  }
  return ids;
}

int run(const GenerateArgs& a, TpGroup* tp) {
  ModelSession s(a.load, tp);
  std::vector<int32_t> prompt;
  if (!a.prompt_ids.empty()) {
    prompt = parse_ids(a.prompt_ids);
  } else if (!a.messages.empty()) {
    prompt = s.tokenizer().encode(s.render_chat(parse_messages(a.messages), !a.no_thinking), false);
  } else {
    prompt = s.tokenizer().encode(a.prompt, true);
  }
  GenerationRequest req = s.make_request(prompt, a.sampling);
  auto on_text = [&](std::string_view t) {
    if (a.json) return;
    std::fwrite(t.data(), 1, t.size(), stdout);
    std::fflush(stdout);
  };
  GenerationResult r = s.generator().generate(req, on_text);
  const double prefill_tps = r.prefill_seconds > 0 ? double(r.prompt_tokens - r.cached_prompt_tokens) / r.prefill_seconds : 0;
  // Tokens after the first (which prefill produced) per decode second; with speculative
  // decoding a step may emit two.
  const int64_t decode_tokens = std::max<int64_t>(0, int64_t(r.output_ids.size()) - 1);
  const double decode_tps = r.decode_seconds > 0 ? double(decode_tokens) / r.decode_seconds : 0;
  if (a.json) {
    nlohmann::json out = {
        {"prompt_token_ids", req.prompt},
        {"output_token_ids", r.output_ids},
        {"text", r.text},
        {"finish_reason", r.finish_reason},
        {"unknown_token_ids", r.unknown_token_ids},
        {"timings",
         {{"load_s", s.load_seconds()},
          {"prefill_s", r.prefill_seconds},
          {"prefill_tokens", r.prompt_tokens - r.cached_prompt_tokens},
          {"prefill_tokens_per_s", prefill_tps},
          {"decode_s", r.decode_seconds},
          {"decode_steps", r.decode_steps},
          {"decode_tokens_per_s", decode_tps}}},
        {"speculative",
         r.draft_tokens == 0 ? nlohmann::json(nullptr)
                             : nlohmann::json{{"draft_tokens", r.draft_tokens},
                                              {"accepted_draft_tokens", r.accepted_draft_tokens},
                                              {"acceptance_rate", double(r.accepted_draft_tokens) / double(r.draft_tokens)},
                                              {"accept_length", double(r.draft_tokens + r.accepted_draft_tokens) /
                                                                    double(r.draft_tokens)}}},
        {"threads", s.pool().size()},
        {"peak_rss_mib", peak_rss_mib()},
        {"weight_mib", double(s.model().weight_bytes()) / (1 << 20)},
        {"kv_cache_mib", double(s.generator().cache_bytes()) / (1 << 20)},
        {"model", s.model().describe()},
    };
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
    std::fflush(stdout);
    if (!a.load.quiet)
      std::fprintf(stderr, "prefill: %lld tokens in %.3f s (%.1f tok/s); decode: %lld tokens in %.3f s (%.1f tok/s); finish: %s\n",
                   (long long)(r.prompt_tokens - r.cached_prompt_tokens), r.prefill_seconds, prefill_tps,
                   (long long)decode_tokens, r.decode_seconds, decode_tps, r.finish_reason.c_str());
    if (r.draft_tokens && !a.load.quiet)
      std::fprintf(stderr, "speculative (NEXTN): %lld of %lld drafts accepted (%.3f), %.2f tokens per verify step\n",
                   (long long)r.accepted_draft_tokens, (long long)r.draft_tokens,
                   double(r.accepted_draft_tokens) / double(r.draft_tokens),
                   double(r.draft_tokens + r.accepted_draft_tokens) / double(r.draft_tokens));
    if (r.unknown_token_ids && !a.load.quiet)
      std::fprintf(stderr, "note: %lld generated ids are past the tokenizer's %zu ids (the model's padding rows); "
                   "they decode as nothing\n", (long long)r.unknown_token_ids, s.tokenizer().vocab_size());
  }
  return 0;
}
}  // namespace

CommandFn add_generate_command(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  add_load_options(app, a->load);
  add_sampling_options(app, a->sampling);
  auto* p = app.add_option("--prompt,-p", a->prompt, "Raw prompt text (tokenized with the tokenizer's special tokens)");
  auto* m = app.add_option("--messages", a->messages, "JSON array of chat messages, rendered with the chat template");
  auto* ids = app.add_option("--prompt-ids", a->prompt_ids, "JSON array of prompt token ids");
  p->excludes(m)->excludes(ids);
  m->excludes(ids);
  app.add_flag("--no-thinking", a->no_thinking, "Pass enable_thinking=false to the chat template");
  app.add_flag("--json", a->json, "Print one JSON object (ids, text, timings) instead of streaming");
  app.callback([&app, p, m, ids] {
    if (p->count() + m->count() + ids->count() == 0)
      throw CLI::ValidationError("generate", "one of --prompt, --messages or --prompt-ids is required");
  });
  return [a] {
    return run_tensor_parallel(a->load.tp, a->load.threads, [&](TpGroup* tp) { return run(*a, tp); });
  };
}

}  // namespace lowbit
