// GPT-2's byte-level alphabet: every byte value gets a printable code point (printable Latin-1
// bytes map to themselves, the other 68 to U+0100..U+0143), so a byte-level BPE vocabulary is
// a set of ordinary strings. Encoding maps raw bytes to these strings; decoding maps back.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lowbit::byte_level {

char32_t byte_to_char(uint8_t b);
// UTF-8 form of byte_to_char(b), the vocabulary string of the single byte b.
const std::string& byte_to_string(uint8_t b);
// The byte that code point c stands for, or -1 if c is not in the alphabet.
int char_to_byte(char32_t c);

// Maps every byte of `raw` to its alphabet character (what HF's ByteLevel pre-tokenizer does).
std::string encode(std::string_view raw);
// Appends the bytes `token` stands for; if some character of `token` is outside the alphabet
// (an added token such as "<|im_start|>" is not, but one with CJK text would be), appends
// the token's own UTF-8 bytes instead, as HF's ByteLevel decoder does.
void decode_token(std::string_view token, std::string& out);

}  // namespace lowbit::byte_level
