// libFuzzer target for `lowbit bench-serving`'s server-sent-events parser, which reads whatever
// bytes a server sends: the input is cut into pieces at the positions its first bytes give, and
// the events must not depend on the cuts (the same bytes fed whole give the same events).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "tools/bench_serving/sse_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using lowbit::bench_serving::SseEvent;
  using lowbit::bench_serving::SseParser;
  if (size < 2) return 0;
  const size_t step = 1 + data[0] % 7;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto collect = [](std::vector<std::string>& out) {
    return [&out](const SseEvent& e) { out.push_back(e.data + '\x1f' + e.error); };
  };
  std::vector<std::string> whole, pieces;
  SseParser a;
  a.feed(bytes, collect(whole));
  a.finish(collect(whole));
  SseParser b;
  for (size_t i = 0; i < bytes.size(); i += step) b.feed(bytes.substr(i, step), collect(pieces));
  b.finish(collect(pieces));
  if (whole != pieces) std::abort();
  return 0;
}
