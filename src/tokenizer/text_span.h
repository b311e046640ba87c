// A piece of text as byte offsets into a string: what pre-tokenization produces and BPE reads.
#pragma once

#include <cstdint>

namespace lowbit {

struct Span {
  uint32_t begin, end;
};

}  // namespace lowbit
