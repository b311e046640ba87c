#include "server/completion_job.h"

#include "server/http_server.h"
#include "server/metrics.h"
#include "server/sse.h"
#include "server/text_hold.h"
#include "tokenizer/tokenizer.h"

namespace lowbit {

CompletionJob::CompletionJob(JobSpec spec, size_t prompts, std::shared_ptr<HttpCall> call, const Tokenizer& tokenizer,
                             ServerMetrics& metrics)
    : spec_(std::move(spec)),
      call_(std::move(call)),
      tokenizer_(tokenizer),
      metrics_(metrics),
      start_(std::chrono::steady_clock::now()),
      choices_(prompts * size_t(spec_.n)) {
  for (size_t i = 0; i < choices_.size(); ++i) {
    auto& c = choices_[i];
    if (spec_.reasoning) c.reasoning_parser.emplace(spec_.reasoning_open);
    if (spec_.tools) c.tool_parser.emplace();
    if (spec_.kind == ApiKind::kCompletion && i / spec_.n < spec_.echo.size()) c.text_offset = spec_.echo[i / spec_.n].size();
  }
}

double CompletionJob::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void CompletionJob::set_engine_id(int choice, uint64_t id) { choices_[choice].engine_id = id; }

std::vector<uint64_t> CompletionJob::pending_engine_ids() const {
  std::vector<uint64_t> ids;
  for (const auto& c : choices_)
    if (!c.finished && c.engine_id) ids.push_back(*c.engine_id);
  return ids;
}

void CompletionJob::start() {
  if (!spec_.stream) return;
  call_->start_stream(200, "text/event-stream");
  for (int i = 0; i < choices(); ++i) {
    if (spec_.kind == ApiKind::kChat) {
      call_->send(sse_event(chat_chunk_json(spec_.header, i, {{"role", "assistant"}, {"content", ""}}, nullptr, "",
                                            spec_.include_usage)));
    } else if (spec_.kind == ApiKind::kCompletion) {
      const size_t p = size_t(i / spec_.n);
      if (p < spec_.echo.size() && !spec_.echo[p].empty())
        call_->send(sse_event(completion_chunk_json(spec_.header, i, spec_.echo[p], nullptr, "", spec_.include_usage)));
    }
  }
}

CompletionJob::Piece CompletionJob::parse(Choice& c, const std::string& text, bool final) {
  Piece p;
  std::string content = text;
  if (c.reasoning_parser) {
    auto d = c.reasoning_parser->push(text);
    if (final) {
      auto f = c.reasoning_parser->finish();
      d.reasoning += f.reasoning;
      d.content += f.content;
    }
    p.reasoning = std::move(d.reasoning);
    content = std::move(d.content);
  }
  if (c.tool_parser) {
    auto d = c.tool_parser->push(content);
    if (final) {
      auto f = c.tool_parser->finish();
      d.content += f.content;
      for (auto& call : f.calls) d.calls.push_back(std::move(call));
    }
    content = std::move(d.content);
    p.calls = std::move(d.calls);
  }
  p.content = std::move(content);
  return p;
}

void CompletionJob::on_event(int index, EngineEvent&& e) {
  if (index < 0 || index >= choices() || complete_) return;
  Choice& c = choices_[size_t(index)];
  if (c.finished) return;
  const double now = elapsed();
  if (!e.tokens.empty()) {
    if (c.first_token_s < 0) {
      c.first_token_s = now;
      metrics_.observe_ttft(now);
    } else {
      const double per_token = (now - c.last_token_s) / double(e.tokens.size());
      for (size_t k = 0; k < e.tokens.size(); ++k) metrics_.observe_inter_token(per_token);
    }
    c.last_token_s = now;
  }
  for (const auto& t : e.tokens) c.ids.push_back(t.id);
  const bool logprobs = spec_.top_logprobs >= 0;
  if (logprobs) c.tokens.insert(c.tokens.end(), e.tokens.begin(), e.tokens.end());
  c.prompt_tokens = e.prompt_tokens;
  c.cached_tokens = e.cached_tokens;
  c.completion_tokens = e.completion_tokens;

  Piece piece = parse(c, e.text, e.finished);
  c.content += piece.content;
  c.reasoning += piece.reasoning;
  for (const auto& call : piece.calls) c.calls.push_back(call);

  if (e.finished) {
    c.finished = true;
    c.finish_reason = e.finish_reason;
    c.error = e.error;
    if (c.finish_reason == "stop" && !c.calls.empty()) c.finish_reason = "tool_calls";
    if (e.matched_stop_token >= 0) c.matched_stop = e.matched_stop_token;
    else if (!e.matched_stop_string.empty()) c.matched_stop = e.matched_stop_string;
    if (e.finish_reason == "stop" || e.finish_reason == "length")
      metrics_.observe_finished(now, c.first_token_s < 0 ? now : c.first_token_s, c.completion_tokens);
  }
  if (spec_.stream) {
    stream_event(index, c, piece, logprobs ? e.tokens : std::vector<OutputToken>{});
  }
  bool all = true;
  for (const auto& ch : choices_) all = all && ch.finished;
  if (all) finish();
}

void CompletionJob::stream_event(int index, Choice& c, const Piece& piece, const std::vector<OutputToken>& new_tokens) {
  if (call_->disconnected()) return;
  const bool usage_null = spec_.include_usage;
  const bool failed = c.finished && (c.finish_reason == "abort" || c.finish_reason == "error");
  switch (spec_.kind) {
    case ApiKind::kChat: {
      Json delta = Json::object();
      if (!piece.reasoning.empty()) delta["reasoning_content"] = piece.reasoning;
      if (!piece.content.empty()) delta["content"] = piece.content;
      if (!piece.calls.empty())
        delta["tool_calls"] = tool_calls_json(piece.calls, int(c.calls.size() - piece.calls.size()), true);
      const Json lp = new_tokens.empty() ? Json(nullptr) : chat_logprobs_json(tokenizer_, new_tokens);
      if (!delta.empty() || !lp.is_null()) call_->send(sse_event(chat_chunk_json(spec_.header, index, delta, lp, "", usage_null)));
      if (c.finished && !failed)
        call_->send(sse_event(chat_chunk_json(spec_.header, index, Json::object(), nullptr, c.finish_reason, usage_null)));
      break;
    }
    case ApiKind::kCompletion: {
      Json lp = nullptr;
      if (!new_tokens.empty()) {
        lp = completion_logprobs_json(tokenizer_, new_tokens, c.text_offset, spec_.top_logprobs > 0);
        for (const auto& off : lp["tokens"]) c.text_offset += off.get<std::string>().size();
      }
      if (!piece.content.empty() || !lp.is_null())
        call_->send(sse_event(completion_chunk_json(spec_.header, index, piece.content, lp, "", usage_null)));
      if (c.finished && !failed)
        call_->send(sse_event(completion_chunk_json(spec_.header, index, "", nullptr, c.finish_reason, usage_null)));
      break;
    }
    case ApiKind::kGenerate: {
      if (failed) break;
      GenerateOutput g;
      g.id = spec_.header.id;
      g.text = c.content;  // SGLang streams the whole text so far
      g.output_ids = c.ids;
      g.finish_reason = c.finished ? c.finish_reason : "";
      g.matched = c.matched_stop;
      g.prompt_tokens = c.prompt_tokens;
      g.completion_tokens = c.completion_tokens;
      g.cached_tokens = c.cached_tokens;
      g.e2e_latency = elapsed();
      if (spec_.top_logprobs >= 0) g.logprobs = &c.tokens;
      if (choices() > 1) g.index = index;
      call_->send(sse_event(generate_json(tokenizer_, g)));
      break;
    }
  }
  if (failed && !error_sent_) {
    error_sent_ = true;
    const int status = c.finish_reason == "abort" ? 503 : 500;
    const std::string msg = c.finish_reason == "abort" ? "the request was aborted (server shutting down or cancelled)"
                                                       : "generation failed: " + c.error;
    call_->send(sse_event(error_json(status, msg)));
  }
}

Usage CompletionJob::usage() const {
  Usage u;
  for (size_t i = 0; i < choices_.size(); ++i) {
    const auto& c = choices_[i];
    if (i % size_t(spec_.n) == 0) {  // a prompt counts once however many choices it has
      u.prompt_tokens += c.prompt_tokens;
      u.cached_tokens += c.cached_tokens;
    }
    u.completion_tokens += c.completion_tokens;
  }
  return u;
}

bool CompletionJob::any_failed(std::string& message, int& status) const {
  for (const auto& c : choices_) {
    if (c.finish_reason == "error") {
      status = 500;
      message = "generation failed: " + c.error;
      return true;
    }
    if (c.finish_reason == "abort") {
      status = 503;
      message = "the request was aborted (server shutting down or cancelled)";
      return true;
    }
  }
  return false;
}

void CompletionJob::finish() {
  complete_ = true;
  if (spec_.stream) {
    if (spec_.include_usage && spec_.kind != ApiKind::kGenerate && !error_sent_)
      call_->send(sse_event(usage_chunk_json(spec_.header, spec_.kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion", usage())));
    call_->send(kSseDone);
    call_->end();
    return;
  }
  reply_all();
}

void CompletionJob::reply_all() {
  std::string message;
  int status = 0;
  if (any_failed(message, status)) return call_->reply_error(status, message);
  const bool logprobs = spec_.top_logprobs >= 0;
  Json body;
  switch (spec_.kind) {
    case ApiKind::kChat: {
      std::vector<ChatChoice> out;
      for (int i = 0; i < choices(); ++i) {
        auto& c = choices_[size_t(i)];
        ChatChoice ch;
        ch.index = i;
        ch.content = c.content;
        ch.reasoning = std::string(trim_blank(c.reasoning));
        ch.tool_calls = c.calls;
        ch.logprobs = logprobs ? chat_logprobs_json(tokenizer_, c.tokens) : Json(nullptr);
        ch.finish_reason = c.finish_reason;
        ch.matched_stop = c.matched_stop;
        out.push_back(std::move(ch));
      }
      body = chat_completion_json(spec_.header, out, usage());
      break;
    }
    case ApiKind::kCompletion: {
      std::vector<TextChoice> out;
      for (int i = 0; i < choices(); ++i) {
        auto& c = choices_[size_t(i)];
        const size_t p = size_t(i / spec_.n);
        const std::string echo = p < spec_.echo.size() ? spec_.echo[p] : "";
        TextChoice ch;
        ch.index = i;
        ch.text = echo + c.content;
        ch.logprobs = logprobs ? completion_logprobs_json(tokenizer_, c.tokens, echo.size(), spec_.top_logprobs > 0)
                               : Json(nullptr);
        ch.finish_reason = c.finish_reason;
        ch.matched_stop = c.matched_stop;
        out.push_back(std::move(ch));
      }
      body = completion_json(spec_.header, out, usage());
      break;
    }
    case ApiKind::kGenerate: {
      Json list = Json::array();
      for (int i = 0; i < choices(); ++i) {
        auto& c = choices_[size_t(i)];
        GenerateOutput g;
        g.id = spec_.header.id + (choices() > 1 ? "-" + std::to_string(i) : "");
        g.text = c.content;
        g.output_ids = c.ids;
        g.finish_reason = c.finish_reason;
        g.matched = c.matched_stop;
        g.prompt_tokens = c.prompt_tokens;
        g.completion_tokens = c.completion_tokens;
        g.cached_tokens = c.cached_tokens;
        g.e2e_latency = elapsed();
        if (logprobs) g.logprobs = &c.tokens;
        list.push_back(generate_json(tokenizer_, g));
      }
      body = (spec_.batch || choices() > 1) ? list : list[0];
      break;
    }
  }
  call_->reply_json(200, body.dump(-1, ' ', false, Json::error_handler_t::replace));
}

}  // namespace lowbit
