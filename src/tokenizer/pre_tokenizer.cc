#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode_data.h"
#include "tokenizer/utf8.h"

namespace lowbit {

void apply_behavior(const std::vector<MatchedRange>& ranges, SplitBehavior behavior,
                    std::vector<Span>& out) {
  // Mirrors NormalizedString::split: build (span, keep) pairs, then drop removed/empty ones.
  struct Item {
    uint32_t begin, end;
    bool remove;
  };
  thread_local std::vector<Item> items;
  items.clear();
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const auto& r : ranges) items.push_back({r.begin, r.end, false});
      break;
    case SplitBehavior::kRemoved:
      for (const auto& r : ranges) items.push_back({r.begin, r.end, r.is_match});
      break;
    case SplitBehavior::kContiguous:
      for (const auto& r : ranges) {
        if (r.is_match == previous_match && !items.empty()) {
          items.back().end = r.end;
        } else {
          items.push_back({r.begin, r.end, false});
        }
        previous_match = r.is_match;
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& r : ranges) {
        if (r.is_match && !previous_match && !items.empty()) {
          items.back().end = r.end;
        } else {
          items.push_back({r.begin, r.end, false});
        }
        previous_match = r.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (size_t k = ranges.size(); k-- > 0;) {
        const auto& r = ranges[k];
        if (r.is_match && !previous_match && !items.empty()) {
          items.back().begin = r.begin;
        } else {
          items.push_back({r.begin, r.end, false});
        }
        previous_match = r.is_match;
      }
      std::reverse(items.begin(), items.end());
      break;
  }
  for (const Item& item : items) {
    if (!item.remove && item.end > item.begin) out.push_back({item.begin, item.end});
  }
}

namespace {

// Tiles [piece.begin, piece.end) with regex matches and the gaps between them.
void tile(const Regex& regex, std::string_view text, Span piece, bool invert,
          std::vector<MatchedRange>& ranges) {
  thread_local std::vector<RegexMatch> matches;
  matches.clear();
  ranges.clear();
  regex.find_all(text.substr(piece.begin, piece.end - piece.begin), matches);
  uint32_t prev = piece.begin;
  for (const RegexMatch& m : matches) {
    uint32_t b = piece.begin + uint32_t(m.begin), e = piece.begin + uint32_t(m.end);
    if (prev != b) ranges.push_back({prev, b, invert});
    ranges.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != piece.end) ranges.push_back({prev, piece.end, invert});
}

// Isolated without invert keeps every match and every gap: no need for the general path.
void split_isolated(const Regex& regex, std::string_view text, Span piece, std::vector<Span>& out) {
  thread_local std::vector<RegexMatch> matches;
  matches.clear();
  regex.find_all(text.substr(piece.begin, piece.end - piece.begin), matches);
  uint32_t prev = piece.begin;
  for (const RegexMatch& m : matches) {
    uint32_t b = piece.begin + uint32_t(m.begin), e = piece.begin + uint32_t(m.end);
    if (prev != b) out.push_back({prev, b});
    if (e != b) out.push_back({b, e});
    prev = e;
  }
  if (prev != piece.end) out.push_back({prev, piece.end});
}

class SplitStep final : public PreTokenizerStep {
 public:
  SplitStep(Regex regex, SplitBehavior behavior, bool invert)
      : regex_(std::move(regex)), behavior_(behavior), invert_(invert) {}

  void split(std::string_view text, Span piece, std::vector<Span>& out) const override {
    if (behavior_ == SplitBehavior::kIsolated && !invert_) {
      split_isolated(regex_, text, piece, out);
      return;
    }
    thread_local std::vector<MatchedRange> ranges;
    tile(regex_, text, piece, invert_, ranges);
    apply_behavior(ranges, behavior_, out);
  }

 private:
  Regex regex_;
  SplitBehavior behavior_;
  bool invert_;
};

// HF's Digits: is_numeric is general category N.
class DigitsStep final : public PreTokenizerStep {
 public:
  explicit DigitsStep(bool individual) : individual_(individual) {}

  void split(std::string_view text, Span piece, std::vector<Span>& out) const override {
    thread_local std::vector<MatchedRange> ranges;
    ranges.clear();
    uint32_t last = piece.begin;
    for (size_t i = piece.begin; i < piece.end;) {
      size_t start = i;
      char32_t cp = utf8::decode(text, i);
      if (unicode::is_number(unicode::properties(cp))) {
        if (last < start) ranges.push_back({last, uint32_t(start), false});
        ranges.push_back({uint32_t(start), uint32_t(i), true});
        last = uint32_t(i);
      }
    }
    if (last < piece.end) ranges.push_back({last, piece.end, false});
    apply_behavior(ranges, individual_ ? SplitBehavior::kIsolated : SplitBehavior::kContiguous,
                   out);
  }

 private:
  bool individual_;
};

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// ByteLevel's own split (use_regex) with the GPT-2 pattern; the byte mapping itself is done
// by BPE on the raw bytes of each piece.
class ByteLevelStep final : public PreTokenizerStep {
 public:
  explicit ByteLevelStep(bool use_regex, std::string_view label)
      : use_regex_(use_regex), regex_(Regex::from_oniguruma(kGpt2Pattern, label)) {}

  void split(std::string_view text, Span piece, std::vector<Span>& out) const override {
    if (!use_regex_) {
      if (piece.end > piece.begin) out.push_back(piece);
      return;
    }
    split_isolated(regex_, text, piece, out);
  }

 private:
  bool use_regex_;
  Regex regex_;
};

SplitBehavior parse_behavior(const nlohmann::json& j, std::string_view label) {
  std::string b = j.is_string() ? j.get<std::string>() : std::string("?");
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  fail("{}: pre_tokenizer Split has unknown behavior '{}'", label, b);
}

struct Builder {
  std::string_view label;
  std::vector<std::shared_ptr<const PreTokenizerStep>>* steps;
  bool* byte_level;
  bool* add_prefix_space;
  size_t* prefix_step;

  void add(const nlohmann::json& spec) {
    std::string type = spec.value("type", std::string());
    if (*byte_level && type != "Sequence") {
      // Later steps would see byte-level characters; no byte-level BPE model does this.
      fail("{}: pre_tokenizer '{}' after ByteLevel is not supported", label, type);
    }
    if (type == "Sequence") {
      for (const auto& sub : spec.at("pretokenizers")) add(sub);
    } else if (type == "Split") {
      const auto& pattern = spec.at("pattern");
      Regex regex = pattern.contains("Regex")
                        ? Regex::from_oniguruma(pattern["Regex"].get<std::string>(), label)
                        : Regex::literal(pattern.at("String").get<std::string>(), label);
      steps->push_back(std::make_shared<SplitStep>(std::move(regex),
                                                   parse_behavior(spec.at("behavior"), label),
                                                   spec.value("invert", false)));
    } else if (type == "Digits") {
      steps->push_back(std::make_shared<DigitsStep>(spec.value("individual_digits", false)));
    } else if (type == "ByteLevel") {
      *byte_level = true;
      *add_prefix_space = spec.value("add_prefix_space", true);
      *prefix_step = steps->size();
      steps->push_back(std::make_shared<ByteLevelStep>(spec.value("use_regex", true), label));
    } else {
      fail(
          "{}: pre_tokenizer type '{}' is not supported (supported: Split, ByteLevel, Digits, "
          "Sequence)",
          label, type.empty() ? spec.dump() : type);
    }
  }
};

}  // namespace

PreTokenizer PreTokenizer::from_json(const nlohmann::json& spec, std::string_view label) {
  PreTokenizer p;
  if (spec.is_null()) return p;
  Builder b{label, &p.steps_, &p.byte_level_, &p.add_prefix_space_, &p.prefix_step_};
  b.add(spec);
  return p;
}

std::string_view PreTokenizer::run(std::string_view text, std::string& storage,
                                   std::vector<Span>& pieces) const {
  thread_local std::vector<Span> next;
  pieces.clear();
  if (text.empty()) return text;
  pieces.push_back({0, uint32_t(text.size())});
  for (size_t k = 0; k < steps_.size(); ++k) {
    if (add_prefix_space_ && k == prefix_step_) {
      // HF prepends " " to every piece that does not start with one.
      std::string rebuilt;
      rebuilt.reserve(text.size() + pieces.size());
      next.clear();
      for (Span s : pieces) {
        uint32_t begin = uint32_t(rebuilt.size());
        if (text[s.begin] != ' ') rebuilt += ' ';
        rebuilt.append(text.substr(s.begin, s.end - s.begin));
        next.push_back({begin, uint32_t(rebuilt.size())});
      }
      storage = std::move(rebuilt);
      text = storage;
      pieces.swap(next);
    }
    next.clear();
    for (Span s : pieces) steps_[k]->split(text, s, next);
    pieces.swap(next);
  }
  return text;
}

}  // namespace lowbit
