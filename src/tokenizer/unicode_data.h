// Unicode properties the tokenizer needs (general category, White_Space, \w and \d), taken
// from Oniguruma's Unicode 16 data through gen_unicode_tables.py, so that every regex class
// and predicate agrees with HF `tokenizers` on every code point.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace lowbit::unicode {

// General categories, in the order gen_unicode_tables.py writes them.
enum Category : uint8_t {
  kCn,
  kLu,
  kLl,
  kLt,
  kLm,
  kLo,
  kMn,
  kMc,
  kMe,
  kNd,
  kNl,
  kNo,
  kPc,
  kPd,
  kPs,
  kPe,
  kPi,
  kPf,
  kPo,
  kSm,
  kSc,
  kSk,
  kSo,
  kZs,
  kZl,
  kZp,
  kCc,
  kCf,
  kCs,
  kCo,
  kNumCategories
};
inline constexpr uint8_t kCategoryMask = 0x1F;
inline constexpr uint8_t kWhiteSpace = 0x20;  // Oniguruma's \s (Unicode White_Space)
inline constexpr uint8_t kWord = 0x40;        // \w
inline constexpr uint8_t kDigit = 0x80;       // \d

// One byte per code point (category | flags); 1.1 MB, built on first use.
const uint8_t* property_table();

inline uint8_t properties(char32_t cp) { return cp < 0x110000 ? property_table()[cp] : 0; }
inline Category category(char32_t cp) { return Category(properties(cp) & kCategoryMask); }
inline bool is_letter(uint8_t props) {
  uint8_t c = props & kCategoryMask;
  return c >= kLu && c <= kLo;
}
inline bool is_number(uint8_t props) {
  uint8_t c = props & kCategoryMask;
  return c >= kNd && c <= kNo;
}
inline bool is_white_space(char32_t cp) { return properties(cp) & kWhiteSpace; }
inline bool is_word(char32_t cp) { return properties(cp) & kWord; }

// Bit set over categories, e.g. category_bit(kLu) | category_bit(kLl).
inline constexpr uint32_t category_bit(Category c) { return 1u << c; }

// Maps a general-category name as written in a regex (L, Lu, Letter, Uppercase_Letter, ...)
// to its set of categories; 0 if the name is not a general category.
uint32_t categories_named(std::string_view name);

using Ranges = std::vector<std::pair<char32_t, char32_t>>;  // inclusive, sorted
// Code points whose category is in `categories` or that have any of `flags`.
Ranges ranges_of(uint32_t categories, uint8_t flags);
Ranges complement(const Ranges& ranges);

}  // namespace lowbit::unicode
