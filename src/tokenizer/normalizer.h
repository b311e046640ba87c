// Normalizers of tokenizer.json that byte-level BPE models use: NFC, NFD, NFKC, NFKD,
// Lowercase and Sequence. Anything else is rejected when the tokenizer loads.
//
// The Unicode forms run through utf8proc, except that code points HF's normalizer does not
// know (its Unicode data is older) are left alone as HF leaves them; Lowercase uses a table
// of Rust's to_lowercase. Both tables come from gen_unicode_tables.py. NFC, the common case,
// only runs utf8proc on the short stretches around code points that are not NFC-stable.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit {

class Normalizer {
 public:
  // `spec` is tokenizer.json's "normalizer"; null gives an identity normalizer.
  static Normalizer from_json(const nlohmann::json& spec, std::string_view label);

  bool empty() const { return steps_.empty(); }
  // Normalizes valid UTF-8 `text` into `out`; returns false (out untouched) when the text
  // is already normalized, so callers can keep using the input without a copy.
  bool apply(std::string_view text, std::string& out) const;

  enum class Kind { kNfc, kNfd, kNfkc, kNfkd, kLowercase };

 private:
  std::vector<Kind> steps_;
};

}  // namespace lowbit
