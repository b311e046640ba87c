#include "server/sse.h"

namespace lowbit {

std::string sse_event(const nlohmann::ordered_json& data) {
  std::string out = "data: ";
  out += data.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  out += "\n\n";
  return out;
}

}  // namespace lowbit
