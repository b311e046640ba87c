// Errors: every failure a user can cause (bad file, bad tensor, bad request) is a
// lowbit::Error whose message names the file, tensor or field. Internal invariants use
// LOWBIT_CHECK, which stays on in release builds (unlike assert).
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace lowbit {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace lowbit

#define LOWBIT_CHECK(cond, ...)                                                 \
  do {                                                                          \
    if (!(cond)) [[unlikely]]                                                   \
      ::lowbit::fail("internal check failed at {}:{}: {} ({})", __FILE__,       \
                     __LINE__, #cond, ::fmt::format(__VA_ARGS__));              \
  } while (0)
