#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace lowbit::byte_level {
namespace {

struct Tables {
  std::array<char32_t, 256> to_char{};
  std::array<std::string, 256> to_string;
  std::array<int16_t, 0x144> to_byte{};  // every alphabet character is below U+0144
};

const Tables& tables() {
  static const Tables t = [] {
    Tables t;
    t.to_byte.fill(-1);
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      t.to_char[b] = printable ? char32_t(b) : char32_t(256 + next++);
      utf8::append(t.to_string[b], t.to_char[b]);
      t.to_byte[t.to_char[b]] = int16_t(b);
    }
    return t;
  }();
  return t;
}

}  // namespace

char32_t byte_to_char(uint8_t b) { return tables().to_char[b]; }
const std::string& byte_to_string(uint8_t b) { return tables().to_string[b]; }

int char_to_byte(char32_t c) { return c < 0x144 ? tables().to_byte[c] : -1; }

std::string encode(std::string_view raw) {
  const Tables& t = tables();
  std::string out;
  out.reserve(raw.size() * 2);
  for (char c : raw) out += t.to_string[uint8_t(c)];
  return out;
}

void decode_token(std::string_view token, std::string& out) {
  size_t start = out.size();
  for (size_t i = 0; i < token.size();) {
    int b = char_to_byte(utf8::decode(token, i));
    if (b < 0) {
      out.resize(start);
      out.append(token);
      return;
    }
    out += char(b);
  }
}

}  // namespace lowbit::byte_level
