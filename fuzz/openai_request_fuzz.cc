// libFuzzer target for what `lowbit serve` reads from the network: a request body through the
// JSON parser and each endpoint's request parser. Any input must either parse or throw
// ApiError (the server's 400); any other exception, crash or sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/openai_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  if (size == 0) return 0;
  // The first byte picks the endpoint, the rest is the body.
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const SamplingParams defaults;
  try {
    const Json j = parse_json_body(body);
    switch (data[0] % 3) {
      case 0: parse_chat_request(j, defaults); break;
      case 1: parse_completion_request(j, defaults); break;
      default: parse_generate_request(j, defaults); break;
    }
  } catch (const ApiError&) {
  }
  return 0;
}
