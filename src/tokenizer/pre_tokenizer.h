// Pre-tokenization: cuts normalized text into the pieces BPE sees, as HF's pre_tokenizers do.
// Supported: Split (regex or string pattern, all five behaviours, invert), ByteLevel
// (add_prefix_space, use_regex with the GPT-2 pattern), Digits and Sequence. Anything else is
// rejected when the tokenizer is loaded.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/text_span.h"

namespace lowbit {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// One (offsets, is_match) entry of HF's Pattern::find_matches; the entries tile the piece.
struct MatchedRange {
  uint32_t begin, end;
  bool is_match;
};
// Applies a split behaviour to the tiling `ranges` and appends the kept, non-empty spans.
void apply_behavior(const std::vector<MatchedRange>& ranges, SplitBehavior behavior,
                    std::vector<Span>& out);

class PreTokenizerStep {
 public:
  virtual ~PreTokenizerStep() = default;
  // Appends the sub-pieces of text[piece] to `out` (offsets into `text`).
  virtual void split(std::string_view text, Span piece, std::vector<Span>& out) const = 0;
};

class PreTokenizer {
 public:
  // `spec` is tokenizer.json's "pre_tokenizer" (may be null). Throws Error naming `label`
  // for unsupported types.
  static PreTokenizer from_json(const nlohmann::json& spec, std::string_view label);

  // Cuts `text` into pieces. If a ByteLevel step asks for a prefix space, the text is copied
  // into `storage` with the spaces inserted and the returned view points there.
  std::string_view run(std::string_view text, std::string& storage,
                       std::vector<Span>& pieces) const;

  // True if a ByteLevel step is present: the pieces are raw bytes that BPE must map through
  // the byte-level alphabet.
  bool byte_level() const { return byte_level_; }

 private:
  std::vector<std::shared_ptr<const PreTokenizerStep>> steps_;  // shared: Tokenizer is copyable
  bool byte_level_ = false;
  bool add_prefix_space_ = false;
  size_t prefix_step_ = 0;  // index of the ByteLevel step that adds the prefix space
};

}  // namespace lowbit
