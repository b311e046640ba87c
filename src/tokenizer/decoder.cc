#include "tokenizer/decoder.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/byte_level.h"

namespace lowbit {

Decoder Decoder::from_json(const nlohmann::json& spec, std::string_view label) {
  Decoder d;
  if (spec.is_null()) return d;
  std::string type = spec.value("type", std::string());
  if (type == "ByteLevel") {
    d.kind_ = Kind::kByteLevel;
  } else if (type == "Sequence" && spec.contains("decoders") && spec["decoders"].size() == 1) {
    return from_json(spec["decoders"][0], label);
  } else {
    fail("{}: decoder type '{}' is not supported (supported: ByteLevel)", label,
         type.empty() ? spec.dump() : type);
  }
  return d;
}

void Decoder::append_token(std::string_view token, size_t index, std::string& out) const {
  switch (kind_) {
    case Kind::kByteLevel:
      byte_level::decode_token(token, out);
      return;
    case Kind::kNone:  // HF joins the tokens with spaces when there is no decoder
      if (index > 0) out += ' ';
      out.append(token);
      return;
  }
}

}  // namespace lowbit
