#include "tokenizer/tokenizer.h"

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoder.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace lowbit {
namespace detail {

struct TokenizerImpl {
  std::string label;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  Bpe bpe;
  Decoder decoder;
  PostProcessor post_processor;
  std::vector<AddedToken> added;                         // by id, with the ids HF assigns
  std::unordered_map<std::string, int32_t> added_id_of;  // content -> id
  AddedTokenMatcher raw_matcher;         // normalized == false: matched on the input
  AddedTokenMatcher normalized_matcher;  // normalized == true: matched after normalization
  std::vector<int32_t> added_index;      // id -> index into `added`, or -1
  std::vector<std::string> decode_form;  // id -> string given to the decoder for added ids
  std::vector<bool> special;             // id -> special
  size_t vocab_size = 0;
  std::optional<int32_t> bos, eos;
  bool add_bos = false, add_eos = false;

  // Normalizes, pre-tokenizes and BPE-encodes text that contains no raw added token.
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
  void encode_pieces(std::string_view text, std::vector<int32_t>& out) const;
  // The string the decoder sees for `id`, or nullptr to skip it; Error if out of range.
  const std::string* decode_token(int32_t id, bool skip_special_tokens) const;
};

void TokenizerImpl::encode_pieces(std::string_view text, std::vector<int32_t>& out) const {
  thread_local std::vector<Span> pieces;
  thread_local std::string storage;
  std::string_view view = pre_tokenizer.run(text, storage, pieces);
  bpe.encode(view, pieces, pre_tokenizer.byte_level(), out);
}

void TokenizerImpl::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  std::string normalized;
  if (normalizer.apply(text, normalized)) text = normalized;
  if (normalized_matcher.empty()) {
    encode_pieces(text, out);
    return;
  }
  std::vector<Segment> segments;
  normalized_matcher.split(text, segments);
  for (const Segment& seg : segments) {
    if (seg.id >= 0) {
      out.push_back(seg.id);
    } else {
      encode_pieces(text.substr(seg.begin, seg.end - seg.begin), out);
    }
  }
}

const std::string* TokenizerImpl::decode_token(int32_t id, bool skip_special_tokens) const {
  if (id < 0) fail("{}: cannot decode negative token id {}", label, id);
  // Models pad their embedding past the tokenizer (Qwen3: 151936 rows, 151669 ids) and may
  // emit such an id; like transformers (tokenizers' id_to_token is None) and vLLM, it decodes
  // as nothing. Callers that care count them (GenerationResult::unknown_token_ids).
  if (size_t(id) >= vocab_size) return nullptr;
  if (skip_special_tokens && special[id]) return nullptr;
  if (added_index[id] >= 0) return &decode_form[id];
  return bpe.id_to_token(id);  // nullptr for an id no token has: HF skips it too
}

}  // namespace detail

namespace {

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open {}", path.string());
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON: {}", path.string(), e.what());
  }
}

// tokenizer_config.json writes special tokens as "<s>" or {"content": "<s>", ...}.
std::optional<std::string> token_string(const nlohmann::json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content")) return (*it)["content"].get<std::string>();
  return std::nullopt;
}

// HF's AddedVocabulary::add_tokens, which tokenizer.json loading calls with the listed tokens
// in order. The listed ids are not used: a token takes the id its content already has (an
// earlier added token or the model vocab), else the next free id after the model vocab
// (counted in entries). A repeated content keeps its id and takes the later flags.
void add_tokens(detail::TokenizerImpl& impl, const nlohmann::json& list) {
  std::map<int32_t, AddedToken> by_id;
  std::unordered_map<std::string, int32_t> id_of;
  std::unordered_set<std::string> special_contents;
  int32_t next_id = int32_t(impl.bpe.count());
  for (const auto& t : list) {
    AddedToken a;
    a.content = t.at("content").get<std::string>();
    a.single_word = t.value("single_word", false);
    a.lstrip = t.value("lstrip", false);
    a.rstrip = t.value("rstrip", false);
    a.normalized = t.value("normalized", true);
    a.special = t.value("special", false);
    if (a.content.empty()) continue;
    auto known = id_of.find(a.content);
    if (known != id_of.end()) {
      a.id = known->second;
    } else if (int32_t model_id = impl.bpe.token_to_id(a.content); model_id >= 0) {
      a.id = model_id;
    } else {
      a.id = next_id++;
    }
    id_of[a.content] = a.id;
    if (a.special) special_contents.insert(a.content);
    by_id[a.id] = std::move(a);
  }

  size_t size = impl.bpe.size();
  if (!by_id.empty()) size = std::max(size, size_t(by_id.rbegin()->first) + 1);
  impl.vocab_size = size;
  impl.added_index.assign(size, -1);
  impl.decode_form.assign(size, std::string());
  impl.special.assign(size, false);
  std::vector<AddedToken> raw, normalized;
  std::vector<std::string> raw_patterns, normalized_patterns;
  for (auto& [id, a] : by_id) {
    impl.added_index[id] = int32_t(impl.added.size());
    std::string form = a.content;
    if (a.normalized) {
      // HF matches (and decodes) a normalized token by its normalized form.
      std::string n;
      if (impl.normalizer.apply(form, n)) form = n;
      normalized.push_back(a);
      normalized_patterns.push_back(form);
    } else {
      raw.push_back(a);
      raw_patterns.push_back(form);
    }
    // HF decides "special" when decoding by looking the decoded string up by content.
    impl.special[id] = special_contents.count(form) > 0;
    impl.decode_form[id] = std::move(form);
    impl.added.push_back(std::move(a));
  }
  impl.raw_matcher = AddedTokenMatcher(std::move(raw), std::move(raw_patterns));
  impl.normalized_matcher =
      AddedTokenMatcher(std::move(normalized), std::move(normalized_patterns));
  impl.added_id_of = std::move(id_of);
}

}  // namespace

Tokenizer Tokenizer::from_dir(const std::filesystem::path& dir) {
  std::filesystem::path file = dir / "tokenizer.json";
  nlohmann::json tokenizer_json = read_json(file);
  std::filesystem::path config_path = dir / "tokenizer_config.json";
  std::optional<nlohmann::json> config;
  if (std::filesystem::exists(config_path)) config = read_json(config_path);
  return from_json(tokenizer_json, config ? &*config : nullptr, file.string());
}

Tokenizer Tokenizer::from_json(const nlohmann::json& j, const nlohmann::json* config,
                               std::string_view label) {
  auto impl = std::make_shared<detail::TokenizerImpl>();
  impl->label = std::string(label);
  try {
    if (!j.is_object() || !j.contains("model")) fail("{}: no \"model\" entry", label);
    for (const char* key : {"truncation", "padding"}) {
      if (j.contains(key) && !j[key].is_null()) fail("{}: \"{}\" is not supported", label, key);
    }
    impl->normalizer = Normalizer::from_json(j.value("normalizer", nlohmann::json()), label);
    impl->pre_tokenizer =
        PreTokenizer::from_json(j.value("pre_tokenizer", nlohmann::json()), label);
    impl->bpe = Bpe::from_json(j["model"], label);
    impl->decoder = Decoder::from_json(j.value("decoder", nlohmann::json()), label);
    impl->post_processor =
        PostProcessor::from_json(j.value("post_processor", nlohmann::json()), label);

    add_tokens(*impl, j.value("added_tokens", nlohmann::json::array()));
    if (config != nullptr) {
      Tokenizer probe(impl);
      auto id_of = [&](const char* key) -> std::optional<int32_t> {
        auto s = token_string(*config, key);
        if (!s) return std::nullopt;
        int32_t id = probe.token_to_id(*s);
        if (id < 0) fail("{}: tokenizer_config {} '{}' is not a token", label, key, *s);
        return id;
      };
      impl->bos = id_of("bos_token");
      impl->eos = id_of("eos_token");
      impl->add_bos = config->value("add_bos_token", false) && impl->bos.has_value();
      impl->add_eos = config->value("add_eos_token", false) && impl->eos.has_value();
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: unexpected tokenizer.json structure: {}", label, e.what());
  }
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view input, bool add_special_tokens) const {
  const detail::TokenizerImpl& t = *impl_;
  std::string repaired;
  std::string_view text = input;
  if (!utf8::is_valid(input)) {
    repaired = utf8::repair(input);
    text = repaired;
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 8);
  if (add_special_tokens) {
    const auto& prefix = t.post_processor.prefix;
    if (t.add_bos && (prefix.empty() || prefix.front() != *t.bos)) out.push_back(*t.bos);
    out.insert(out.end(), prefix.begin(), prefix.end());
  }
  thread_local std::vector<Segment> segments;
  segments.clear();
  t.raw_matcher.split(text, segments);
  for (const Segment& seg : segments) {
    if (seg.id >= 0) {
      out.push_back(seg.id);
    } else {
      t.encode_plain(text.substr(seg.begin, seg.end - seg.begin), out);
    }
  }
  if (add_special_tokens) {
    const auto& suffix = t.post_processor.suffix;
    out.insert(out.end(), suffix.begin(), suffix.end());
    if (t.add_eos && (suffix.empty() || suffix.back() != *t.eos)) out.push_back(*t.eos);
  }
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  size_t kept = 0;
  for (int32_t id : ids) {
    const std::string* token = impl_->decode_token(id, skip_special_tokens);
    if (token != nullptr) impl_->decoder.append_token(*token, kept++, bytes);
  }
  return utf8::repair(bytes);
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->added_id_of.find(std::string(token));
  return it != impl_->added_id_of.end() ? it->second : impl_->bpe.token_to_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id >= 0 && size_t(id) < impl_->vocab_size) {
    if (impl_->added_index[id] >= 0) return impl_->added[impl_->added_index[id]].content;
    if (const std::string* s = impl_->bpe.id_to_token(id)) return *s;
  }
  fail("{}: no token has id {}", impl_->label, id);
}

size_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->vocab_size && impl_->special[id];
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }

Tokenizer::StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : impl_(tokenizer.impl_), skip_special_tokens_(skip_special_tokens) {}

std::string Tokenizer::StreamDecoder::push(int32_t id) {
  const std::string* token = impl_->decode_token(id, skip_special_tokens_);
  if (token == nullptr) return {};
  impl_->decoder.append_token(*token, kept_++, pending_);
  size_t ready = utf8::complete_prefix_length(pending_);
  std::string out = utf8::repair(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string Tokenizer::StreamDecoder::flush() {
  std::string out = utf8::repair(pending_);
  pending_.clear();
  return out;
}

}  // namespace lowbit
