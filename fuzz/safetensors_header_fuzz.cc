// libFuzzer target for the untrusted safetensors header: parse_safetensors_header must
// either throw lowbit::Error or return entries that all lie inside the buffer, do not
// overlap and match their dtype x shape. Anything else (a crash, a sanitizer report, or an
// abort below) is a bug. Run with fuzz/run_fuzz.sh SECONDS.
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "io/safetensors.h"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void check_invariants(const lowbit::SafetensorsHeader& h, const uint8_t* data, size_t size) {
  check(h.data_offset >= 8 && h.data_offset <= size);
  const uint64_t data_size = size - h.data_offset;
  uint64_t prev_end = 0;
  volatile uint8_t sink = 0;
  for (const auto& t : h.tensors) {
    check(!t.name.empty() && lowbit::is_valid_utf8(t.name));
    check(t.begin <= t.end && t.end <= data_size);
    uint64_t bytes = lowbit::dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      check(d >= 0);
      check(!__builtin_mul_overflow(bytes, uint64_t(d), &bytes));
    }
    check(bytes == t.end - t.begin);
    if (t.begin == t.end) continue;
    check(t.begin >= prev_end);  // sorted by begin, no overlap
    prev_end = t.end;
    // Touch both ends so ASan would flag a view outside the input.
    sink = sink + data[h.data_offset + t.begin] + data[h.data_offset + t.end - 1];
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    lowbit::SafetensorsHeader h = lowbit::parse_safetensors_header(data, size, "fuzz");
    check_invariants(h, data, size);
  } catch (const lowbit::Error&) {
    // Rejecting malformed input is the expected outcome.
  }
  return 0;
}
