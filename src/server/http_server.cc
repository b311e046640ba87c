#include "server/http_server.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <mutex>

#include "core/error.h"
#include "server/api_error.h"
#include "server/auth.h"

namespace lowbit {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

const char* method_name(evhttp_cmd_type c) {
  switch (c) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
  }
  return "UNKNOWN";
}

// The pending request's socket, or -1 once libevent has let go of the connection.
int request_fd(evhttp_request* req) {
  evhttp_connection* conn = evhttp_request_get_connection(req);
  if (!conn) return -1;
  bufferevent* bev = evhttp_connection_get_bufferevent(conn);
  return bev ? int(bufferevent_getfd(bev)) : -1;
}

}  // namespace

// ---- HttpCall ----

HttpCall::HttpCall(evhttp_request* req, HttpServer& server) : req_(req), server_(server) {
  method_ = method_name(evhttp_request_get_command(req));
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* p = uri ? evhttp_uri_get_path(uri) : nullptr;
  path_ = p && *p ? p : "/";
  evbuffer* in = evhttp_request_get_input_buffer(req);
  const size_t n = evbuffer_get_length(in);
  body_.resize(n);
  if (n) evbuffer_copyout(in, body_.data(), n);
  if (evhttp_connection* conn = evhttp_request_get_connection(req)) evhttp_connection_set_closecb(conn, close_cb, this);
}

HttpCall::~HttpCall() {
  if (!done_) reply_error(500, "internal error: the request was dropped without a reply");
}

std::string HttpCall::header(const char* name) const {
  const char* v = evhttp_find_header(evhttp_request_get_input_headers(req_), name);
  return v ? v : "";
}

void HttpCall::close_cb(evhttp_connection* conn, void* arg) {
  auto* self = static_cast<HttpCall*>(arg);
  evhttp_connection_set_closecb(conn, nullptr, nullptr);
  if (self->disconnected_) return;
  self->disconnected_ = true;
  if (self->on_disconnect_) self->on_disconnect_();
}

void HttpCall::finish() {
  done_ = true;
  server_.call_done(this);  // may destroy *this: must be last
}

void HttpCall::restore_idle_timeout() {
  if (evhttp_connection* conn = evhttp_request_get_connection(req_))
    evhttp_connection_set_timeout(conn, server_.config_.io_timeout_seconds);
}

void HttpCall::reply(int status, std::string_view content_type, std::string_view body) {
  if (done_) return;
  restore_idle_timeout();
  if (evhttp_connection* conn = evhttp_request_get_connection(req_)) evhttp_connection_set_closecb(conn, nullptr, nullptr);
  evkeyvalq* h = evhttp_request_get_output_headers(req_);
  evhttp_add_header(h, "Content-Type", std::string(content_type).c_str());
  if (server_.draining()) evhttp_add_header(h, "Connection", "close");
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, body.data(), body.size());
  if (server_.on_status_) server_.on_status_(status);
  evhttp_send_reply(req_, status, nullptr, buf);  // frees req_ once written (or at once if the client is gone)
  evbuffer_free(buf);
  finish();
}

void HttpCall::reply_json(int status, const std::string& json) { reply(status, "application/json", json); }

void HttpCall::reply_error(int status, const std::string& message, const std::string& param) {
  reply_json(status, error_json(status, message, param).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void HttpCall::start_stream(int status, std::string_view content_type) {
  if (done_ || streaming_) return;
  streaming_ = true;
  evkeyvalq* h = evhttp_request_get_output_headers(req_);
  evhttp_add_header(h, "Content-Type", std::string(content_type).c_str());
  evhttp_add_header(h, "Cache-Control", "no-cache");
  evhttp_add_header(h, "X-Accel-Buffering", "no");
  if (server_.on_status_) server_.on_status_(status);
  evhttp_send_reply_start(req_, status, nullptr);
}

void HttpCall::send(std::string_view data) {
  if (done_ || !streaming_ || data.empty()) return;
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, data.data(), data.size());
  evhttp_send_reply_chunk(req_, buf);  // a no-op once the connection is gone
  evbuffer_free(buf);
}

void HttpCall::end() {
  if (done_) return;
  restore_idle_timeout();
  if (!streaming_) start_stream(200, "text/event-stream");
  if (evhttp_connection* conn = evhttp_request_get_connection(req_)) evhttp_connection_set_closecb(conn, nullptr, nullptr);
  evhttp_send_reply_end(req_);  // also frees a request whose connection is gone
  finish();
}

// ---- HttpServer ----

HttpServer::HttpServer(HttpServerConfig config) : config_(std::move(config)) {
  static std::once_flag threads_once;
  std::call_once(threads_once, [] {
    evthread_use_pthreads();  // event_active from the engine thread
    std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error return, not process death
  });
  base_ = event_base_new();
  if (!base_) fail("libevent: event_base_new failed");
  http_ = evhttp_new(base_);
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                        EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
  evhttp_set_max_body_size(http_, ev_ssize_t(config_.max_body_bytes));
  evhttp_set_max_headers_size(http_, ev_ssize_t(config_.max_header_bytes));
  evhttp_set_timeout(http_, config_.io_timeout_seconds);
  evhttp_set_gencb(http_, on_request, this);
  socket_ = evhttp_bind_socket_with_handle(http_, config_.host.c_str(), uint16_t(config_.port));
  if (!socket_) fail("cannot listen on {}:{} (address in use, or not an address of this machine)", config_.host, config_.port);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  port_ = config_.port;
  if (getsockname(evhttp_bound_socket_get_fd(socket_), reinterpret_cast<sockaddr*>(&ss), &len) == 0)
    port_ = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                     : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  sigint_ = evsignal_new(base_, SIGINT, on_signal, this);
  sigterm_ = evsignal_new(base_, SIGTERM, on_signal, this);
  // SIGUSR1 too: under mpirun (tensor parallelism) the launcher turns SIGINT/SIGTERM into the
  // SIGUSR1 that mpirun forwards to every rank (its own SIGTERM would end the job at once).
  sigusr1_ = evsignal_new(base_, SIGUSR1, on_signal, this);
  event_add(sigint_, nullptr);
  event_add(sigterm_, nullptr);
  event_add(sigusr1_, nullptr);
  tick_ = event_new(base_, -1, EV_PERSIST, on_tick, this);
  timeval tv{0, 200 * 1000};
  event_add(tick_, &tv);
}

HttpServer::~HttpServer() {
  // Requests still pending (a forced stop): forget them without replying; evhttp_free below
  // closes their connections, which must not call back into the destroyed calls.
  for (auto& [ptr, call] : in_flight_) {
    call->on_disconnect(nullptr);
    call->done_ = true;
    if (evhttp_connection* conn = evhttp_request_get_connection(call->req_)) evhttp_connection_set_closecb(conn, nullptr, nullptr);
  }
  in_flight_.clear();
  if (tick_) event_free(tick_);
  if (sigint_) event_free(sigint_);
  if (sigterm_) event_free(sigterm_);
  if (sigusr1_) event_free(sigusr1_);
  if (http_) evhttp_free(http_);
  if (base_) event_base_free(base_);
}

void HttpServer::route(const std::string& method, const std::string& path, HttpHandler handler, bool open) {
  routes_[path][method] = Route{std::move(handler), open};
}

void HttpServer::run() { event_base_dispatch(base_); }

void HttpServer::on_request(evhttp_request* req, void* arg) { static_cast<HttpServer*>(arg)->dispatch(req); }

void HttpServer::dispatch(evhttp_request* req) {
  // The io timeout guards reading a request and idle keep-alive connections. Once a request is
  // read it may wait in the engine's queue and generate for longer than that without a byte
  // on the wire (a non-streamed reply, or a stream before its first token), so the connection
  // gets the in-flight bound until the reply starts (HttpCall::restore_idle_timeout).
  if (evhttp_connection* conn = evhttp_request_get_connection(req))
    evhttp_connection_set_timeout(conn, config_.in_flight_timeout_seconds);
  auto call = std::make_shared<HttpCall>(req, *this);
  in_flight_[call.get()] = call;
  if (draining_) return call->reply_error(503, "the server is shutting down");
  auto path_it = routes_.find(call->path());
  bool open = false;
  if (path_it != routes_.end())
    for (const auto& [m, r] : path_it->second) open = open || r.open;
  if (!config_.api_key.empty() && !open) {
    const std::string auth = call->header("Authorization");
    const std::string_view key = bearer_token(auth);
    if (key.empty()) return call->reply_error(401, "missing API key: send 'Authorization: Bearer <key>'");
    if (!constant_time_equals(key, config_.api_key)) return call->reply_error(401, "invalid API key");
  }
  if (path_it == routes_.end()) return call->reply_error(404, "no such endpoint: " + call->path());
  auto route_it = path_it->second.find(call->method());
  if (route_it == path_it->second.end() && call->method() == "HEAD") route_it = path_it->second.find("GET");
  if (route_it == path_it->second.end()) {
    std::string allowed;
    for (const auto& [m, r] : path_it->second) allowed += (allowed.empty() ? "" : ", ") + m;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allowed.c_str());
    return call->reply_error(405, "method " + call->method() + " is not allowed on " + call->path() + " (allowed: " + allowed + ")");
  }
  try {
    route_it->second.handler(call);
  } catch (const ApiError& e) {
    call->reply_error(e.status(), e.what(), e.param());
  } catch (const std::exception& e) {
    call->reply_error(500, std::string("internal error: ") + e.what());
  }
}

void HttpServer::call_done(HttpCall* call) {
  auto it = in_flight_.find(call);
  if (it == in_flight_.end()) return;
  auto keep = std::move(it->second);  // destroy after erasing, outside the map
  in_flight_.erase(it);
}

void HttpServer::begin_shutdown() {
  if (draining_) {
    forced_ = true;  // a second signal: end in-flight requests now
    if (on_force_stop_) on_force_stop_();
    return;
  }
  draining_ = true;
  drain_started_ = now_seconds();
  if (socket_) {
    evhttp_del_accept_socket(http_, socket_);  // stop accepting; open connections get 503
    socket_ = nullptr;
  }
  std::fprintf(stderr, "shutting down: %zu request(s) in flight, up to %.0f s to finish\n", in_flight_.size(),
               config_.shutdown_grace_seconds);
}

void HttpServer::on_signal(int, short, void* arg) { static_cast<HttpServer*>(arg)->begin_shutdown(); }

void HttpServer::on_tick(int, short, void* arg) {
  auto* self = static_cast<HttpServer*>(arg);
  // A client that closed its socket while its reply is computed: evhttp only notices on the
  // next write, so peek at each pending socket (EOF reads as 0 bytes).
  std::vector<std::shared_ptr<HttpCall>> gone;
  for (auto& [ptr, call] : self->in_flight_) {
    if (call->done_ || call->disconnected_) continue;
    const int fd = request_fd(call->req_);
    if (fd < 0) continue;
    char c;
    const ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) gone.push_back(call);
  }
  for (auto& call : gone) {
    call->disconnected_ = true;
    if (call->on_disconnect_) call->on_disconnect_();
  }
  if (!self->draining_) return;
  const double waited = now_seconds() - self->drain_started_;
  if (self->in_flight_.empty()) {
    event_base_loopexit(self->base_, nullptr);
  } else if (waited > self->config_.shutdown_grace_seconds && !self->forced_) {
    self->forced_ = true;
    std::fprintf(stderr, "shutdown: %zu request(s) still running after %.0f s; cancelling them\n",
                 self->in_flight_.size(), waited);
    if (self->on_force_stop_) self->on_force_stop_();
  } else if (waited > self->config_.shutdown_grace_seconds + 10) {
    event_base_loopexit(self->base_, nullptr);  // cancelled requests did not end: give up on them
  }
}

}  // namespace lowbit
