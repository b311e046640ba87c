#include "tools/bench_serving/client.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include <fmt/format.h>

#include "core/error.h"
#include "tools/bench_serving/sse_parser.h"

namespace lowbit::bench_serving {

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point from, Clock::time_point to) { return std::chrono::duration<double>(to - from).count(); }

void init_curl_once() {
  static const CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (code != CURLE_OK) fail("libcurl failed to initialise: {}", curl_easy_strerror(code));
}

// Kept of a body that is not a whole non-streamed answer: enough to quote an error page.
constexpr size_t kErrorBodyLimit = 64 * 1024;

// Options every request shares: no proxy (a benchmark measures the server, and SGLang's client
// ignores proxy variables too), and no "Expect: 100-continue" (curl would otherwise hold a body
// over 1 KiB back for up to a second waiting for a server that may never send "100").
curl_slist* common_setup(CURL* easy, const ClientOptions& o, const std::string& url, char* errbuf) {
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_PROXY, "");
  curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
  if (o.request_timeout_s > 0) curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, long(o.request_timeout_s * 1000));
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  if (!o.api_key.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + o.api_key).c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  return headers;
}

std::string curl_error(CURLcode code, const char* errbuf) {
  return errbuf[0] ? fmt::format("{}: {}", curl_easy_strerror(code), errbuf) : curl_easy_strerror(code);
}

// One request in flight: owns its curl handle, parses the response as it arrives and fills its
// RequestResult when curl reports the transfer done.
class Transfer {
 public:
  Transfer(const ClientOptions& o, const BenchPrompt& prompt, RequestResult& result, Clock::time_point run_start)
      : result_(result), api_(o.api.api), stream_(o.api.stream) {
    easy_ = curl_easy_init();
    if (!easy_) fail("libcurl could not create a handle");
    body_ = request_body(o.api, prompt.text, prompt.output_len).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    headers_ = common_setup(easy_, o, o.base_url + endpoint_path(api_), errbuf_);
    curl_easy_setopt(easy_, CURLOPT_POST, 1L);
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, body_.c_str());
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body_.size()));
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &Transfer::on_write);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, this);
    result_.prompt_len = prompt.prompt_len;
    start_ = Clock::now();
    result_.start_s = seconds(run_start, start_);
  }
  ~Transfer() {
    curl_easy_cleanup(easy_);
    curl_slist_free_all(headers_);
  }
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  CURL* easy() const { return easy_; }

  void finish(CURLcode code) {
    result_.latency_s = seconds(start_, Clock::now());
    if (code != CURLE_OK) return set_error(curl_error(code, errbuf_));
    curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status_);
    if (status_ != 200) return set_error(fmt::format("HTTP {}: {}", status_, error_message(raw_)));
    if (stream_) {
      parser_.finish([this](const SseEvent& e) { on_event(e, Clock::now()); });
      if (!stream_error_.empty()) return set_error(stream_error_);
      if (!done_)
        return set_error(events_ ? "the stream ended before 'data: [DONE]'"
                                  : "no server-sent events in the response: " + error_message(raw_));
    } else {
      ResponsePiece piece = read_response(api_, raw_);
      if (!piece.error.empty()) return set_error(piece.error);
      take_usage(piece);
      result_.generated_text = std::move(piece.text);
    }
    if (!got_first_) result_.ttft_s = result_.latency_s;  // non-streamed, or no text at all
    result_.success = true;
  }

 private:
  static size_t on_write(char* data, size_t size, size_t count, void* self) {
    static_cast<Transfer*>(self)->on_bytes(std::string_view(data, size * count));
    return size * count;
  }

  void on_bytes(std::string_view bytes) {
    const auto now = Clock::now();  // one time for everything that arrived together
    if (status_ == 0) curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status_);
    if ((!stream_ && status_ == 200) || raw_.size() < kErrorBodyLimit) raw_.append(bytes);
    if (stream_ && status_ == 200) parser_.feed(bytes, [&](const SseEvent& e) { on_event(e, now); });
  }

  void on_event(const SseEvent& e, Clock::time_point now) {
    ++events_;
    if (!e.error.empty()) {
      if (stream_error_.empty()) stream_error_ = "error event: " + error_message(e.error);
      return;
    }
    if (done_) return;
    if (e.data == "[DONE]") {
      done_ = true;
      return;
    }
    ResponsePiece piece = read_stream_chunk(api_, e.data);
    if (!piece.error.empty()) {
      if (stream_error_.empty()) stream_error_ = piece.error;
      return;
    }
    take_usage(piece);
    if (piece.text.empty()) return;  // role-only first chunk, usage-only last chunk
    if (!got_first_) {
      result_.ttft_s = seconds(start_, now);
      got_first_ = true;
    } else {
      result_.itl_s.push_back(seconds(last_chunk_, now));
    }
    last_chunk_ = now;
    result_.generated_text += piece.text;
  }

  void take_usage(const ResponsePiece& piece) {
    if (piece.completion_tokens >= 0) result_.usage_completion_tokens = piece.completion_tokens;
    if (piece.prompt_tokens >= 0) result_.usage_prompt_tokens = piece.prompt_tokens;
  }

  void set_error(std::string message) {
    result_.success = false;
    result_.error = std::move(message);
  }

  RequestResult& result_;
  Api api_;
  bool stream_;
  CURL* easy_ = nullptr;
  curl_slist* headers_ = nullptr;
  std::string body_;
  char errbuf_[CURL_ERROR_SIZE] = {};
  Clock::time_point start_, last_chunk_;
  long status_ = 0;
  std::string raw_;  // the whole body when not streamed; the start of it otherwise (for errors)
  SseParser parser_;
  int64_t events_ = 0;
  bool got_first_ = false, done_ = false;
  std::string stream_error_;
};

struct MultiDeleter {
  void operator()(CURLM* m) const { curl_multi_cleanup(m); }
};

}  // namespace

RunOutcome run_requests(const ClientOptions& options, const std::vector<BenchPrompt>& prompts,
                        const std::vector<double>& arrival_s, int64_t max_concurrency,
                        const std::function<void(int64_t)>& on_done) {
  LOWBIT_CHECK(arrival_s.size() == prompts.size(), "{} arrival times for {} prompts", arrival_s.size(), prompts.size());
  init_curl_once();
  std::unique_ptr<CURLM, MultiDeleter> multi(curl_multi_init());
  if (!multi) fail("libcurl could not create a multi handle");
  const size_t n = prompts.size();
  RunOutcome out;
  out.results.resize(n);
  std::vector<std::unique_ptr<Transfer>> transfers(n);
  const auto t0 = Clock::now();
  size_t next = 0;
  int64_t in_flight = 0, done = 0;
  auto has_slot = [&] { return max_concurrency <= 0 || in_flight < max_concurrency; };
  auto complete = [&] {
    ++done;
    out.duration_s = seconds(t0, Clock::now());
    if (on_done) on_done(done);
  };
  while (done < int64_t(n)) {
    while (next < n && arrival_s[next] <= seconds(t0, Clock::now()) && has_slot()) {
      transfers[next] = std::make_unique<Transfer>(options, prompts[next], out.results[next], t0);
      curl_easy_setopt(transfers[next]->easy(), CURLOPT_PRIVATE, reinterpret_cast<char*>(next));
      if (CURLMcode mc = curl_multi_add_handle(multi.get(), transfers[next]->easy()); mc != CURLM_OK) {
        out.results[next].error = fmt::format("libcurl: {}", curl_multi_strerror(mc));
        transfers[next].reset();
        complete();
      } else {
        ++in_flight;
      }
      ++next;
    }
    int running = 0;
    curl_multi_perform(multi.get(), &running);
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi.get(), &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* easy = msg->easy_handle;
      const CURLcode code = msg->data.result;
      char* slot = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &slot);
      const auto index = reinterpret_cast<size_t>(slot);
      transfers[index]->finish(code);
      curl_multi_remove_handle(multi.get(), easy);
      transfers[index].reset();
      --in_flight;
      complete();
    }
    if (done == int64_t(n)) break;
    // Sleep until a socket is ready, but no later than the next arrival (if it can start).
    int timeout_ms = 1000;
    if (next < n && has_slot()) {
      const double wait = arrival_s[next] - seconds(t0, Clock::now());
      timeout_ms = int(std::clamp(std::ceil(wait * 1000), 0.0, 1000.0));
    }
    if (timeout_ms > 0) curl_multi_poll(multi.get(), nullptr, 0, timeout_ms, nullptr);
  }
  return out;
}

std::string first_served_model(const ClientOptions& options) {
  init_curl_once();
  const std::string url = options.base_url + "/v1/models";
  std::unique_ptr<CURL, void (*)(CURL*)> easy(curl_easy_init(), curl_easy_cleanup);
  if (!easy) fail("libcurl could not create a handle");
  char errbuf[CURL_ERROR_SIZE] = {};
  ClientOptions o = options;
  if (o.request_timeout_s <= 0) o.request_timeout_s = 60;
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> headers(common_setup(easy.get(), o, url, errbuf),
                                                              curl_slist_free_all);
  std::string body;
  curl_easy_setopt(easy.get(), CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t c, void* out) {
    static_cast<std::string*>(out)->append(d, s * c);
    return s * c;
  });
  curl_easy_setopt(easy.get(), CURLOPT_WRITEDATA, &body);
  const CURLcode code = curl_easy_perform(easy.get());
  if (code != CURLE_OK) fail("GET {} failed: {} (is the server running? pass --model to skip this)", url, curl_error(code, errbuf));
  long status = 0;
  curl_easy_getinfo(easy.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) fail("GET {}: HTTP {}: {} (pass --model to skip this)", url, status, error_message(body));
  const auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("data") && j["data"].is_array() && !j["data"].empty() && j["data"][0].is_object() &&
      j["data"][0].contains("id") && j["data"][0]["id"].is_string())
    return j["data"][0]["id"].get<std::string>();
  fail("GET {}: no model id in data[0].id (pass --model): {}", url, error_message(body));
}

}  // namespace lowbit::bench_serving
