// The HTTP layer: libevent's evhttp on one event-loop thread.
//
// Why evhttp: one thread multiplexes thousands of idle keep-alive or streaming connections
// with a few KiB each (no thread per connection), chunked replies give server-sent events,
// and it has per-connection read/write timeouts, header- and body-size limits built in. It is
// maintained, in Debian (libevent-dev), and its user events let the engine thread wake the
// loop safely (evthread_use_pthreads).
//
// Everything here runs on the loop thread; other threads reach it only through a user event
// (stream_bridge.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

struct event_base;
struct evhttp;
struct evhttp_request;
struct evhttp_bound_socket;
struct evhttp_connection;
struct event;

namespace lowbit {

struct HttpServerConfig {
  std::string host = "127.0.0.1";
  int port = 30000;
  std::string api_key;                     // empty: no authentication
  size_t max_body_bytes = 8u << 20;        // larger bodies get 413 (libevent's reply)
  size_t max_header_bytes = 64u << 10;     // larger header blocks get 400
  int io_timeout_seconds = 60;             // idle keep-alive, slow headers/body, stalled reader
  int in_flight_timeout_seconds = 3600;    // a read request waiting for its reply (queue + generation)
  double shutdown_grace_seconds = 30;      // in-flight requests get this long after SIGINT/SIGTERM
};

// One request and its reply. Replies exactly once: reply(), or start_stream() … end().
// Shared so that a pending job can keep it; after the client is gone the reply calls are
// no-ops (libevent frees the request on the final one).
class HttpCall {
 public:
  HttpCall(evhttp_request* req, class HttpServer& server);
  ~HttpCall();

  const std::string& method() const { return method_; }
  const std::string& path() const { return path_; }
  const std::string& body() const { return body_; }
  std::string header(const char* name) const;  // "" if absent

  void reply(int status, std::string_view content_type, std::string_view body);
  void reply_json(int status, const std::string& json);
  void reply_error(int status, const std::string& message, const std::string& param = "");
  void start_stream(int status, std::string_view content_type);
  void send(std::string_view data);
  void end();

  bool replied() const { return done_; }
  bool disconnected() const { return disconnected_; }
  // Called once, on the loop thread, when the client goes away before the reply is complete.
  void on_disconnect(std::function<void()> cb) { on_disconnect_ = std::move(cb); }

 private:
  friend class HttpServer;
  static void close_cb(evhttp_connection*, void* arg);
  void finish();
  void restore_idle_timeout();  // back to io_timeout_seconds once the reply is complete

  evhttp_request* req_;
  HttpServer& server_;
  std::string method_, path_, body_;
  bool streaming_ = false, done_ = false, disconnected_ = false;
  std::function<void()> on_disconnect_;
};

using HttpHandler = std::function<void(const std::shared_ptr<HttpCall>&)>;

class HttpServer {
 public:
  explicit HttpServer(HttpServerConfig config);  // binds (throws Error naming host:port)
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // `open`: served without the API key (the chat page, /health, /metrics).
  void route(const std::string& method, const std::string& path, HttpHandler handler, bool open = false);

  // Runs the loop until a stop: SIGINT/SIGTERM stop accepting, give in-flight requests
  // shutdown_grace_seconds, then call on_force_stop (which must end them) and exit.
  void run();
  void on_force_stop(std::function<void()> cb) { on_force_stop_ = std::move(cb); }
  // Called with the status of every reply (for metrics).
  void on_status(std::function<void(int)> cb) { on_status_ = std::move(cb); }
  void begin_shutdown();  // as a signal does

  event_base* base() const { return base_; }
  int port() const { return port_; }
  bool draining() const { return draining_; }
  size_t in_flight() const { return in_flight_.size(); }

 private:
  friend class HttpCall;
  static void on_request(evhttp_request* req, void* arg);
  static void on_signal(int, short, void* arg);
  static void on_tick(int, short, void* arg);
  void dispatch(evhttp_request* req);
  void call_done(HttpCall* call);

  HttpServerConfig config_;
  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  evhttp_bound_socket* socket_ = nullptr;
  event* sigint_ = nullptr;
  event* sigterm_ = nullptr;
  event* sigusr1_ = nullptr;
  event* tick_ = nullptr;
  int port_ = 0;
  bool draining_ = false, forced_ = false;
  double drain_started_ = 0;
  struct Route {
    HttpHandler handler;
    bool open = false;
  };
  std::map<std::string, std::map<std::string, Route>> routes_;  // path → method → route
  std::map<HttpCall*, std::shared_ptr<HttpCall>> in_flight_;
  std::function<void()> on_force_stop_;
  std::function<void(int)> on_status_;
};

}  // namespace lowbit
