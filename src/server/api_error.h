// An error the API client must see: the HTTP status, OpenAI's error type and a message that
// names the offending parameter. Rendered as {"error": {"message", "type", "param", "code"}}.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace lowbit {

class ApiError : public Error {
 public:
  ApiError(int status, const std::string& message, std::string param = "")
      : Error(message), status_(status), param_(std::move(param)) {}
  int status() const { return status_; }
  const std::string& param() const { return param_; }

 private:
  int status_;
  std::string param_;
};

// 400 naming a request field.
template <class... Args>
[[noreturn]] void bad_request(const std::string& param, fmt::format_string<Args...> format, Args&&... args) {
  throw ApiError(400, fmt::format(format, std::forward<Args>(args)...), param);
}

// OpenAI's type for a status: invalid_request_error (4xx), authentication_error (401),
// not_found_error (404), server_error (5xx) ...
std::string error_type_for_status(int status);
nlohmann::ordered_json error_json(int status, const std::string& message, const std::string& param = "");

}  // namespace lowbit
