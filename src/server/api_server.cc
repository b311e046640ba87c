#include "server/api_server.h"

#include <chrono>
#include <random>

#include "chat/chat_template.h"
#include "server/chat_prompt.h"
#include "server/reasoning_parser.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

#if LOWBIT_HAVE_CHAT_PAGE
#include "server/chat_page/chat_page.h"
#endif

namespace lowbit {

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

uint64_t random_u64() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return rng();
}

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

constexpr std::string_view kPlaceholderPage =
    "<!doctype html><meta charset=utf-8><title>lowbit</title>"
    "<p>lowbit serve is running. The API is at /v1/chat/completions.</p>";

}  // namespace

ApiServer::ApiServer(ApiServerConfig config, Engine& engine, const Tokenizer& tokenizer, const ChatTemplate* chat_template)
    : config_(std::move(config)),
      engine_(engine),
      tokenizer_(tokenizer),
      chat_template_(chat_template),
      http_(std::make_unique<HttpServer>(config_.http)),
      metrics_(config_.model_name),
      started_(unix_now()) {
  bridge_ = std::make_unique<EventBridge>(
      http_->base(), [this](uint64_t job, int choice, EngineEvent&& e) { on_engine_event(job, choice, std::move(e)); });
  auto bind = [this](void (ApiServer::*fn)(const CallPtr&)) { return [this, fn](const CallPtr& c) { (this->*fn)(c); }; };
  http_->route("POST", "/v1/chat/completions", bind(&ApiServer::chat));
  http_->route("POST", "/v1/completions", bind(&ApiServer::completions));
  http_->route("POST", "/generate", bind(&ApiServer::generate));
  http_->route("GET", "/v1/models", bind(&ApiServer::models));
  http_->route("POST", "/v1/tokenize", bind(&ApiServer::tokenize));
  http_->route("POST", "/tokenize", bind(&ApiServer::tokenize));
  http_->route("POST", "/v1/detokenize", bind(&ApiServer::detokenize));
  http_->route("POST", "/detokenize", bind(&ApiServer::detokenize));
  http_->route("GET", "/metrics", bind(&ApiServer::metrics), /*open=*/true);
  http_->route("GET", "/health", [this](const CallPtr& c) {
    c->reply_json(http_->draining() ? 503 : 200, http_->draining() ? R"({"status":"shutting down"})" : R"({"status":"ok"})");
  }, /*open=*/true);
  http_->route("GET", "/", [](const CallPtr& c) {
#if LOWBIT_HAVE_CHAT_PAGE
    c->reply(200, "text/html; charset=utf-8", chat_page_html());
#else
    c->reply(200, "text/html; charset=utf-8", kPlaceholderPage);
#endif
  }, /*open=*/true);
  http_->on_status([this](int status) { metrics_.count_http_response(status); });
  http_->on_force_stop([this] {
    std::vector<uint64_t> ids;
    for (auto& [id, job] : jobs_) ids.push_back(id);
    for (uint64_t id : ids) cancel_job(id);
  });
}

ApiServer::~ApiServer() {
  engine_.shutdown(false);  // no sink may run once the bridge is gone
  jobs_.clear();
}

void ApiServer::run() { http_->run(); }

ResponseHeader ApiServer::new_header(const char* prefix, const std::string&) const {
  // The served name, whatever the client asked for (SGLang does the same: one model per server).
  return {fmt::format("{}{:016x}{:016x}", prefix, random_u64(), random_u64()), unix_now(), config_.model_name};
}

std::vector<int32_t> ApiServer::encode_prompt(const PromptInput& in, bool add_special_tokens) const {
  if (in.is_ids) {
    for (size_t i = 0; i < in.ids.size(); ++i)
      if (size_t(in.ids[i]) >= tokenizer_.vocab_size())
        throw ApiError(400, fmt::format("prompt token id {} (position {}) is not in the vocabulary of {} ids", in.ids[i], i,
                                        tokenizer_.vocab_size()), "prompt");
    return in.ids;
  }
  return tokenizer_.encode(in.text, add_special_tokens);
}

void ApiServer::launch(const CallPtr& call, JobSpec spec, const std::vector<std::vector<int32_t>>& prompts,
                       const GenerationFields& gen, int64_t default_max_tokens, const char* prompt_param) {
  const int64_t ctx = engine_.context_length();
  std::vector<int64_t> max_tokens;
  for (const auto& p : prompts) {
    const int64_t len = int64_t(p.size());
    if (len == 0) throw ApiError(400, "the prompt is empty", prompt_param);
    if (len >= ctx)
      throw ApiError(400, fmt::format("the prompt has {} tokens; the context length is {} (and at least one token must be generated)", len, ctx),
                     prompt_param);
    if (gen.max_tokens) {
      if (len + *gen.max_tokens > ctx)
        throw ApiError(400, fmt::format("the prompt ({} tokens) plus max_tokens ({}) is {} tokens, over the context length of {}; "
                                        "lower max_tokens to at most {}", len, *gen.max_tokens, len + *gen.max_tokens, ctx, ctx - len),
                       "max_tokens");
      max_tokens.push_back(*gen.max_tokens);
    } else {
      max_tokens.push_back(default_max_tokens > 0 ? std::min(default_max_tokens, ctx - len) : ctx - len);
    }
  }
  spec.n = gen.n;
  spec.stream = gen.stream;
  spec.include_usage = gen.include_usage;
  spec.top_logprobs = gen.top_logprobs;
  const uint64_t id = next_job_++;
  auto job = std::make_shared<CompletionJob>(std::move(spec), prompts.size(), call, tokenizer_, metrics_);
  jobs_[id] = job;
  int choice = 0;
  try {
    for (size_t p = 0; p < prompts.size(); ++p) {
      for (int k = 0; k < gen.n; ++k, ++choice) {
        EngineRequest r;
        r.prompt = prompts[p];
        r.sampling = gen.sampling;
        // A given seed makes the whole reply reproducible; choices of one prompt still differ.
        r.has_seed = gen.seeded;
        r.sampling.seed = gen.seeded ? gen.sampling.seed + uint64_t(k) : random_u64();
        r.max_new_tokens = max_tokens[p];
        r.stop_strings = gen.stop;
        r.stop_token_ids = gen.stop_token_ids;
        r.ignore_eos = gen.ignore_eos;
        if (auto eos = tokenizer_.eos_id(); eos && !r.ignore_eos) r.stop_token_ids.push_back(*eos);
        r.skip_special_tokens = gen.skip_special_tokens;
        r.top_logprobs = gen.top_logprobs;
        job->set_engine_id(choice, engine_.submit(std::move(r), bridge_->sink(id, choice)));
      }
    }
  } catch (const EngineBusy& e) {
    cancel_job(id);
    jobs_.erase(id);
    throw ApiError(503, std::string("the server is busy: ") + e.what());
  } catch (const ApiError&) {
    cancel_job(id);
    jobs_.erase(id);
    throw;
  } catch (const Error& e) {
    cancel_job(id);
    jobs_.erase(id);
    throw ApiError(400, e.what());
  }
  call->on_disconnect([this, id] { cancel_job(id); });
  job->start();
}

void ApiServer::cancel_job(uint64_t id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  for (uint64_t engine_id : it->second->pending_engine_ids()) engine_.cancel(engine_id);
}

void ApiServer::on_engine_event(uint64_t id, int choice, EngineEvent&& e) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;  // a job given up on (submit failed part-way)
  auto job = it->second;
  job->on_event(choice, std::move(e));
  if (job->complete()) jobs_.erase(id);
}

void ApiServer::chat(const CallPtr& call) {
  const Json body = parse_json_body(call->body());
  ChatRequest req = parse_chat_request(body, config_.sampling_defaults);
  if (!chat_template_)
    throw ApiError(400, "this model has no chat template (tokenizer_config.json / chat_template.jinja); use /v1/completions", "messages");
  const std::string prompt_text = render_chat_prompt(*chat_template_, req);
  JobSpec spec;
  spec.kind = ApiKind::kChat;
  spec.header = new_header("chatcmpl-", req.model);
  spec.reasoning = !config_.reasoning_parser.empty() && req.separate_reasoning;
  spec.reasoning_open = config_.reasoning_parser == "qwen3-thinking" || ReasoningParser::prompt_opens_reasoning(prompt_text);
  spec.tools = !config_.tool_call_parser.empty() && !req.tools.is_null();
  // The template already wrote the special tokens (bos, role markers) into the text.
  launch(call, std::move(spec), {tokenizer_.encode(prompt_text, false)}, req.gen, 0, "messages");
}

void ApiServer::completions(const CallPtr& call) {
  const Json body = parse_json_body(call->body());
  CompletionRequest req = parse_completion_request(body, config_.sampling_defaults);
  if (req.echo && req.gen.top_logprobs >= 0)
    throw ApiError(400, "'echo' with 'logprobs' needs prompt logprobs, which this server does not compute", "echo");
  JobSpec spec;
  spec.kind = ApiKind::kCompletion;
  spec.header = new_header("cmpl-", req.model);
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& p : req.prompts) {
    prompts.push_back(encode_prompt(p, true));
    if (req.echo) spec.echo.push_back(p.is_ids ? tokenizer_.decode(p.ids, false) : p.text);
  }
  launch(call, std::move(spec), prompts, req.gen, config_.completion_default_max_tokens, "prompt");
}

void ApiServer::generate(const CallPtr& call) {
  const Json body = parse_json_body(call->body());
  GenerateRequest req = parse_generate_request(body, config_.sampling_defaults);
  JobSpec spec;
  spec.kind = ApiKind::kGenerate;
  spec.header = new_header("", "");
  spec.batch = req.batch;
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& p : req.prompts) prompts.push_back(encode_prompt(p, true));
  launch(call, std::move(spec), prompts, req.gen, config_.generate_default_max_tokens, req.prompts[0].is_ids ? "input_ids" : "text");
}

void ApiServer::models(const CallPtr& call) {
  Json m = {{"id", config_.model_name},
            {"object", "model"},
            {"created", started_},
            {"owned_by", "lowbit"},
            {"root", config_.model_name},
            {"max_model_len", engine_.context_length()}};
  call->reply_json(200, dump({{"object", "list"}, {"data", Json::array({m})}}));
}

void ApiServer::tokenize(const CallPtr& call) {
  const Json body = parse_json_body(call->body());
  bool add_special = true;
  if (body.contains("add_special_tokens")) {
    if (!body["add_special_tokens"].is_boolean()) throw ApiError(400, "'add_special_tokens' must be a boolean", "add_special_tokens");
    add_special = body["add_special_tokens"].get<bool>();
  }
  const int64_t ctx = engine_.context_length();
  if (body.contains("messages")) {
    ChatRequest req = parse_chat_request(body, config_.sampling_defaults);
    if (!chat_template_) throw ApiError(400, "this model has no chat template", "messages");
    auto ids = tokenizer_.encode(render_chat_prompt(*chat_template_, req), false);
    call->reply_json(200, dump({{"tokens", ids}, {"count", ids.size()}, {"max_model_len", ctx}}));
    return;
  }
  if (!body.contains("prompt")) throw ApiError(400, "'prompt' (a string or a list of strings) or 'messages' is required", "prompt");
  const Json& p = body["prompt"];
  if (p.is_string()) {
    auto ids = tokenizer_.encode(p.get<std::string>(), add_special);
    call->reply_json(200, dump({{"tokens", ids}, {"count", ids.size()}, {"max_model_len", ctx}}));
    return;
  }
  if (!p.is_array()) throw ApiError(400, "'prompt' must be a string or a list of strings", "prompt");
  Json tokens = Json::array(), counts = Json::array();
  for (size_t i = 0; i < p.size(); ++i) {
    if (!p[i].is_string()) throw ApiError(400, fmt::format("'prompt[{}]' must be a string", i), "prompt");
    auto ids = tokenizer_.encode(p[i].get<std::string>(), add_special);
    counts.push_back(ids.size());
    tokens.push_back(std::move(ids));
  }
  call->reply_json(200, dump({{"tokens", tokens}, {"count", counts}, {"max_model_len", ctx}}));
}

void ApiServer::detokenize(const CallPtr& call) {
  const Json body = parse_json_body(call->body());
  if (!body.contains("tokens") || !body["tokens"].is_array())
    throw ApiError(400, "'tokens' (a list of token ids) is required", "tokens");
  std::vector<int32_t> ids;
  const Json& t = body["tokens"];
  for (size_t i = 0; i < t.size(); ++i) {
    if (!t[i].is_number_integer() || t[i].get<int64_t>() < 0 || t[i].get<int64_t>() > INT32_MAX)
      throw ApiError(400, fmt::format("'tokens[{}]' must be a non-negative integer token id", i), "tokens");
    ids.push_back(t[i].get<int32_t>());
  }
  bool skip = false;
  if (body.contains("skip_special_tokens") && body["skip_special_tokens"].is_boolean()) skip = body["skip_special_tokens"].get<bool>();
  const std::string text = utf8::repair(tokenizer_.decode(ids, skip));
  call->reply_json(200, dump({{"prompt", text}, {"text", text}}));
}

void ApiServer::metrics(const CallPtr& call) {
  call->reply(200, "text/plain; version=0.0.4; charset=utf-8", metrics_.render(engine_.stats()));
}

}  // namespace lowbit
