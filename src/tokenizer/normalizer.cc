#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace lowbit {
namespace {

void add_steps(const nlohmann::json& spec, std::string_view label,
               std::vector<Normalizer::Kind>& steps) {
  if (spec.is_null()) return;
  std::string type = spec.value("type", std::string());
  if (type == "Sequence") {
    for (const auto& sub : spec.at("normalizers")) add_steps(sub, label, steps);
  } else if (type == "NFC") {
    steps.push_back(Normalizer::Kind::kNfc);
  } else if (type == "NFD") {
    steps.push_back(Normalizer::Kind::kNfd);
  } else if (type == "NFKC") {
    steps.push_back(Normalizer::Kind::kNfkc);
  } else if (type == "NFKD") {
    steps.push_back(Normalizer::Kind::kNfkd);
  } else if (type == "Lowercase") {
    steps.push_back(Normalizer::Kind::kLowercase);
  } else {
    fail(
        "{}: normalizer type '{}' is not supported (supported: NFC, NFD, NFKC, NFKD, "
        "Lowercase, Sequence)",
        label, type.empty() ? spec.dump() : type);
  }
}

// ASCII is its own normal form in all four forms. (For NFC, nfc() below finds the exact
// stretches to normalize.)
bool unchanged_by(Normalizer::Kind kind, std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    uint8_t b = uint8_t(text[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    if (kind != Normalizer::Kind::kNfc) return false;
    char32_t cp = utf8::decode(text, i);
    if (cp >= 0x300) return false;  // below U+0300 everything is NFC-stable
  }
  return true;
}

// Code points that HF's normalizer (older Unicode data) treats as unassigned; see
// gen_unicode_tables.py.
constexpr char32_t kExceptions[] = {
#include "tokenizer/normalization_exceptions.inc"
};

bool is_exception(char32_t cp) {
  static const std::vector<bool> bits = [] {
    std::vector<bool> b(0x110000);
    for (char32_t c : kExceptions) b[c] = true;
    return b;
  }();
  return bits[cp];
}

std::string run_utf8proc(std::string_view text, int options) {
  if (text.empty()) return {};
  utf8proc_uint8_t* result = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                    utf8proc_ssize_t(text.size()), &result,
                                    utf8proc_option_t(options | UTF8PROC_STABLE));
  if (n < 0) fail("normalization failed: {}", utf8proc_errmsg(n));
  std::string out(reinterpret_cast<char*>(result), size_t(n));
  std::free(result);
  return out;
}

// An exception code point is a starter without decomposition or composition for HF, so it
// cuts the text into parts that normalize independently; it is kept as it is.
std::string normalize_form(std::string_view text, int options) {
  std::string out;
  size_t part = 0;
  for (size_t i = 0; i < text.size();) {
    size_t start = i;
    char32_t cp = utf8::decode(text, i);
    if (cp >= 0x300 && is_exception(cp)) {
      out += run_utf8proc(text.substr(part, start - part), options);
      out.append(text.substr(start, i - start));
      part = i;
    }
  }
  if (part == 0) return run_utf8proc(text, options);
  out += run_utf8proc(text.substr(part), options);
  return out;
}

// Composing normalization (NFC) only changes text around NFC-unstable code points: find the
// stretches that contain them, each from the last stable starter before to the next one.
constexpr std::pair<char32_t, char32_t> kNfcUnstable[] = {
#include "tokenizer/nfc_unstable.inc"
};

bool nfc_unstable(char32_t cp) {
  static const std::vector<bool> bits = [] {
    std::vector<bool> b(0x110000);
    for (auto [lo, hi] : kNfcUnstable) {
      for (char32_t c = lo; c <= hi; ++c) b[c] = true;
    }
    return b;
  }();
  return cp >= 0x300 && bits[cp];
}

// NFC of `text` into `out`; false (out untouched) if there is nothing to do.
bool nfc(std::string_view text, std::string& out) {
  size_t copied = 0;    // text[0, copied) is in `out`
  size_t boundary = 0;  // start of the last stable code point
  bool changed = false;
  std::string result;
  for (size_t i = 0; i < text.size();) {
    size_t start = i;
    if (uint8_t(text[i]) < 0x80) {
      // Skip ASCII eight bytes at a time; the boundary is the last ASCII byte.
      while (i + 8 <= text.size()) {
        uint64_t w;
        std::memcpy(&w, text.data() + i, 8);
        if (w & 0x8080808080808080ull) break;
        i += 8;
      }
      while (i < text.size() && uint8_t(text[i]) < 0x80) ++i;
      boundary = i - 1;
      continue;
    }
    if (!nfc_unstable(utf8::decode(text, i))) {
      boundary = start;
      continue;
    }
    while (i < text.size()) {  // extend to the next stable code point
      size_t next = i;
      if (uint8_t(text[i]) < 0x80 || !nfc_unstable(utf8::decode(text, next))) break;
      i = next;
    }
    result.append(text.substr(copied, boundary - copied));
    result += normalize_form(text.substr(boundary, i - boundary), UTF8PROC_COMPOSE);
    copied = i;
    boundary = i;
    changed = true;
  }
  if (!changed) return false;
  result.append(text.substr(copied));
  out = std::move(result);
  return true;
}

struct Lower {
  char32_t cp;
  const char* utf8;
};
// Rust's char::to_lowercase (Unicode 16), as HF's Lowercase uses; sorted by code point.
constexpr Lower kLowercase[] = {
#include "tokenizer/lowercase_table.inc"
};

std::string lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    uint8_t b = uint8_t(text[i]);
    if (b < 0x80) {
      out += char(b >= 'A' && b <= 'Z' ? b + 32 : b);
      ++i;
      continue;
    }
    size_t start = i;
    char32_t cp = utf8::decode(text, i);
    auto it = std::lower_bound(std::begin(kLowercase), std::end(kLowercase), cp,
                               [](const Lower& l, char32_t c) { return l.cp < c; });
    if (it != std::end(kLowercase) && it->cp == cp) {
      out += it->utf8;
    } else {
      out.append(text.substr(start, i - start));
    }
  }
  return out;
}

}  // namespace

Normalizer Normalizer::from_json(const nlohmann::json& spec, std::string_view label) {
  Normalizer n;
  add_steps(spec, label, n.steps_);
  return n;
}

bool Normalizer::apply(std::string_view text, std::string& out) const {
  bool changed = false;
  std::string current;
  for (Kind kind : steps_) {
    std::string_view in = changed ? std::string_view(current) : text;
    if (kind != Kind::kLowercase && unchanged_by(kind, in)) continue;
    std::string next;
    switch (kind) {
      case Kind::kNfc:
        if (!nfc(in, next)) continue;
        break;
      case Kind::kNfd:
        next = normalize_form(in, UTF8PROC_DECOMPOSE);
        break;
      case Kind::kNfkc:
        next = normalize_form(in, UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
        break;
      case Kind::kNfkd:
        next = normalize_form(in, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
        break;
      case Kind::kLowercase:
        next = lowercase(in);
        break;
    }
    current = std::move(next);
    changed = true;
  }
  if (changed) out = std::move(current);
  return changed;
}

}  // namespace lowbit
