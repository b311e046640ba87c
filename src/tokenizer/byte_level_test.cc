#include "tokenizer/byte_level.h"

#include <gtest/gtest.h>

#include <set>

namespace lowbit {
namespace {

TEST(ByteLevel, MapIsABijectionOntoPrintableCharacters) {
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    char32_t c = byte_level::byte_to_char(uint8_t(b));
    EXPECT_TRUE(seen.insert(c).second) << "byte " << b << " shares its character";
    EXPECT_EQ(byte_level::char_to_byte(c), b);
    EXPECT_FALSE(c <= 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) << "byte " << b;
  }
}

TEST(ByteLevel, KnownCharacters) {
  EXPECT_EQ(byte_level::byte_to_char('A'), U'A');
  EXPECT_EQ(byte_level::byte_to_char(' '), U'\u0120');   // "Ġ"
  EXPECT_EQ(byte_level::byte_to_char('\n'), U'\u010A');  // "Ċ"
  EXPECT_EQ(byte_level::byte_to_char(0x00), U'\u0100');
  EXPECT_EQ(byte_level::byte_to_char(0xAD), U'\u0143');
  EXPECT_EQ(byte_level::byte_to_char(0xFF), U'\u00FF');
  EXPECT_EQ(byte_level::encode(" hi\n"), "\xC4\xA0hi\xC4\x8A");
  EXPECT_EQ(byte_level::char_to_byte(U'\u4E00'), -1);
}

TEST(ByteLevel, DecodeRoundTripsAndFallsBackForForeignCharacters) {
  std::string raw = "caf\xC3\xA9 \xE4\xB8\x80\xF0\x9F\x98\x80";
  std::string out;
  byte_level::decode_token(byte_level::encode(raw), out);
  EXPECT_EQ(out, raw);
  out.clear();
  byte_level::decode_token("<|im_start|>", out);  // all ASCII: maps to itself
  EXPECT_EQ(out, "<|im_start|>");
  out.clear();
  byte_level::decode_token("a\xE4\xB8\x80", out);  // U+4E00 is not in the alphabet
  EXPECT_EQ(out, "a\xE4\xB8\x80");
}

}  // namespace
}  // namespace lowbit
