// Decoders of tokenizer.json: ByteLevel (possibly inside a Sequence) or none. Both turn each
// token into bytes independently, so decoding is "concatenate, then repair UTF-8", and the
// stream decoder can work token by token. Anything else is rejected at load time.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

namespace lowbit {

class Decoder {
 public:
  static Decoder from_json(const nlohmann::json& spec, std::string_view label);

  // Appends the bytes of `token`, the `index`-th token kept for decoding.
  void append_token(std::string_view token, size_t index, std::string& out) const;

 private:
  enum class Kind { kNone, kByteLevel };
  Kind kind_ = Kind::kNone;
};

}  // namespace lowbit
