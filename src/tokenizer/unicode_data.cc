#include "tokenizer/unicode_data.h"

#include <array>
#include <string_view>

namespace lowbit::unicode {
namespace {

struct Run {
  uint32_t first;
  uint8_t value;
};

constexpr Run kRuns[] = {
#include "tokenizer/unicode_tables.inc"
};

std::vector<uint8_t> build_table() {
  std::vector<uint8_t> table(0x110000);
  constexpr size_t n = sizeof(kRuns) / sizeof(kRuns[0]);
  for (size_t i = 0; i < n; ++i) {
    uint32_t end = i + 1 < n ? kRuns[i + 1].first : 0x110000;
    for (uint32_t cp = kRuns[i].first; cp < end; ++cp) table[cp] = kRuns[i].value;
  }
  return table;
}

constexpr uint32_t bits(std::initializer_list<Category> cs) {
  uint32_t b = 0;
  for (Category c : cs) b |= category_bit(c);
  return b;
}

}  // namespace

const uint8_t* property_table() {
  static const std::vector<uint8_t> table = build_table();
  return table.data();
}

uint32_t categories_named(std::string_view name) {
  struct Named {
    std::string_view short_name, long_name;
    uint32_t set;
  };
  static constexpr std::array<Named, 38> kNames = {{
      {"L", "Letter", bits({kLu, kLl, kLt, kLm, kLo})},
      {"Lu", "Uppercase_Letter", bits({kLu})},
      {"Ll", "Lowercase_Letter", bits({kLl})},
      {"Lt", "Titlecase_Letter", bits({kLt})},
      {"Lm", "Modifier_Letter", bits({kLm})},
      {"Lo", "Other_Letter", bits({kLo})},
      {"M", "Mark", bits({kMn, kMc, kMe})},
      {"Mn", "Nonspacing_Mark", bits({kMn})},
      {"Mc", "Spacing_Mark", bits({kMc})},
      {"Me", "Enclosing_Mark", bits({kMe})},
      {"N", "Number", bits({kNd, kNl, kNo})},
      {"Nd", "Decimal_Number", bits({kNd})},
      {"Nl", "Letter_Number", bits({kNl})},
      {"No", "Other_Number", bits({kNo})},
      {"P", "Punctuation", bits({kPc, kPd, kPs, kPe, kPi, kPf, kPo})},
      {"Pc", "Connector_Punctuation", bits({kPc})},
      {"Pd", "Dash_Punctuation", bits({kPd})},
      {"Ps", "Open_Punctuation", bits({kPs})},
      {"Pe", "Close_Punctuation", bits({kPe})},
      {"Pi", "Initial_Punctuation", bits({kPi})},
      {"Pf", "Final_Punctuation", bits({kPf})},
      {"Po", "Other_Punctuation", bits({kPo})},
      {"S", "Symbol", bits({kSm, kSc, kSk, kSo})},
      {"Sm", "Math_Symbol", bits({kSm})},
      {"Sc", "Currency_Symbol", bits({kSc})},
      {"Sk", "Modifier_Symbol", bits({kSk})},
      {"So", "Other_Symbol", bits({kSo})},
      {"Z", "Separator", bits({kZs, kZl, kZp})},
      {"Zs", "Space_Separator", bits({kZs})},
      {"Zl", "Line_Separator", bits({kZl})},
      {"Zp", "Paragraph_Separator", bits({kZp})},
      {"C", "Other", bits({kCc, kCf, kCs, kCo, kCn})},
      {"Cc", "Control", bits({kCc})},
      {"Cf", "Format", bits({kCf})},
      {"Cs", "Surrogate", bits({kCs})},
      {"Co", "Private_Use", bits({kCo})},
      {"Cn", "Unassigned", bits({kCn})},
      {"LC", "Cased_Letter", bits({kLu, kLl, kLt})},
  }};
  for (const Named& n : kNames) {
    if (name == n.short_name || name == n.long_name) return n.set;
  }
  return 0;
}

Ranges ranges_of(uint32_t categories, uint8_t flags) {
  const uint8_t* table = property_table();
  Ranges out;
  for (char32_t cp = 0; cp < 0x110000; ++cp) {
    uint8_t p = table[cp];
    bool in = (categories & category_bit(Category(p & kCategoryMask))) || (p & flags);
    if (!in) continue;
    if (!out.empty() && out.back().second + 1 == cp) {
      out.back().second = cp;
    } else {
      out.emplace_back(cp, cp);
    }
  }
  return out;
}

Ranges complement(const Ranges& ranges) {
  Ranges out;
  char32_t next = 0;
  for (auto [lo, hi] : ranges) {
    if (lo > next) out.emplace_back(next, lo - 1);
    next = hi + 1;
  }
  if (next < 0x110000) out.emplace_back(next, 0x10FFFF);
  return out;
}

}  // namespace lowbit::unicode
