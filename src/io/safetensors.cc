#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "io/json_util.h"

namespace lowbit {

using nlohmann::json;

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const uint8_t c = uint8_t(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      const uint8_t cc = uint8_t(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

namespace {

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Also true for unsigned values (nlohmann counts those as integers too).
bool is_json_integer(const json& j) { return j.is_number_integer(); }

void check_name(std::string_view label, const std::string& name) {
  if (name.empty()) fail("{}: header has a tensor with an empty name", label);
  if (!is_valid_utf8(name)) fail("{}: tensor name is not valid UTF-8", label);
  if (name.find('\0') != std::string::npos)
    fail("{}: tensor name {} contains a NUL character", label, nlohmann::json(name).dump());
}

std::map<std::string, std::string> parse_metadata(std::string_view label, const json& value) {
  std::map<std::string, std::string> metadata;
  if (value.is_null()) return metadata;
  if (!value.is_object())
    fail("{}: __metadata__ must be an object of strings, got {}", label, json_type_name(value));
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string())
      fail("{}: __metadata__ value for '{}' must be a string, got {}", label, key,
           json_type_name(v));
    metadata.emplace(key, v.get<std::string>());
  }
  return metadata;
}

std::vector<int64_t> parse_shape(std::string_view label, const std::string& name,
                                 const json& shape) {
  if (!shape.is_array())
    fail("{}: tensor '{}': shape must be an array of integers, got {}", label, name,
         json_type_name(shape));
  std::vector<int64_t> dims;
  dims.reserve(shape.size());
  for (const json& d : shape) {
    if (!is_json_integer(d))
      fail("{}: tensor '{}': shape entries must be integers, got {} {}", label, name,
           json_type_name(d), json_excerpt(d));
    // nlohmann: is_number_integer() also holds for unsigned values, so test unsigned first.
    if (d.is_number_unsigned()) {
      if (d.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        fail("{}: tensor '{}': dimension {} overflows int64", label, name, d.get<uint64_t>());
    } else if (d.get<int64_t>() < 0) {
      fail("{}: tensor '{}': negative dimension {} in shape {}", label, name, d.get<int64_t>(),
           json_excerpt(shape));
    }
    dims.push_back(d.get<int64_t>());
  }
  return dims;
}

uint64_t parse_offset(std::string_view label, const std::string& name, const json& v) {
  if (!is_json_integer(v) || (!v.is_number_unsigned() && v.get<int64_t>() < 0))
    fail("{}: tensor '{}': data_offsets must be two non-negative integers, got {}", label, name,
         json_excerpt(v));
  return v.get<uint64_t>();
}

const json& require_field(std::string_view label, const std::string& name, const json& info,
                          const char* field) {
  auto it = info.find(field);
  if (it == info.end()) fail("{}: tensor '{}': missing '{}'", label, name, field);
  return *it;
}

SafetensorsEntry parse_entry(std::string_view label, const std::string& name, const json& info,
                             uint64_t data_size) {
  check_name(label, name);
  if (!info.is_object())
    fail("{}: tensor '{}': entry must be an object, got {}", label, name, json_type_name(info));
  SafetensorsEntry e;
  e.name = name;

  const json& dtype = require_field(label, name, info, "dtype");
  if (!dtype.is_string())
    fail("{}: tensor '{}': dtype must be a string, got {}", label, name, json_type_name(dtype));
  auto parsed = parse_dtype(dtype.get<std::string>());
  if (!parsed) fail("{}: tensor '{}': unknown dtype '{}'", label, name, dtype.get<std::string>());
  e.dtype = *parsed;

  const json& shape = require_field(label, name, info, "shape");
  e.shape = parse_shape(label, name, shape);

  const json& offsets = require_field(label, name, info, "data_offsets");
  if (!offsets.is_array() || offsets.size() != 2)
    fail("{}: tensor '{}': data_offsets must be [begin, end], got {}", label, name,
         json_excerpt(offsets));
  e.begin = parse_offset(label, name, offsets[0]);
  e.end = parse_offset(label, name, offsets[1]);
  if (e.begin > e.end)
    fail("{}: tensor '{}': data_offsets begin {} > end {}", label, name, e.begin, e.end);
  if (e.end > data_size)
    fail("{}: tensor '{}': data_offsets [{}, {}) out of range of the {}-byte data section", label,
         name, e.begin, e.end, data_size);

  uint64_t bytes = dtype_size(e.dtype);
  for (int64_t d : e.shape) {
    if (__builtin_mul_overflow(bytes, uint64_t(d), &bytes))
      fail("{}: tensor '{}': shape {} overflows the byte size", label, name, json_excerpt(shape));
  }
  if (bytes != e.end - e.begin)
    fail("{}: tensor '{}': shape {} of {} needs {} bytes but data_offsets span {}", label, name,
         json_excerpt(shape), dtype_name(e.dtype), bytes, e.end - e.begin);
  return e;
}

// Empty tensors reference no bytes, so they cannot overlap anything.
void check_no_overlap(std::string_view label, std::vector<SafetensorsEntry>& tensors) {
  std::sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const SafetensorsEntry* prev = nullptr;
  for (const auto& t : tensors) {
    if (t.begin == t.end) continue;
    if (prev && t.begin < prev->end)
      fail("{}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", label, prev->name, prev->begin,
           prev->end, t.name, t.begin, t.end);
    prev = &t;
  }
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size,
                                           std::string_view file_label) {
  const std::string_view label = file_label;
  if (size < 8)
    fail("{}: file is {} bytes, too short for the 8-byte safetensors header length", label, size);
  const uint64_t header_len = read_le64(bytes);
  if (header_len > kMaxSafetensorsHeaderBytes)
    fail("{}: header length {} is absurd (limit {}); not a safetensors file?", label, header_len,
         kMaxSafetensorsHeaderBytes);
  if (header_len > size - 8)
    fail("{}: header length {} extends beyond the end of the file ({} bytes); truncated?", label,
         header_len, size);
  if (header_len == 0) fail("{}: header is empty", label);

  std::string_view text(reinterpret_cast<const char*>(bytes + 8), size_t(header_len));
  // Checked up front so a bad tensor name gets this message rather than a parser error.
  if (!is_valid_utf8(text)) fail("{}: header is not valid UTF-8", label);
  json root = parse_json_unique_keys(text, fmt::format("{}: header", label), "tensor name");
  if (!root.is_object())
    fail("{}: header must be a JSON object, got {}", label, json_type_name(root));

  SafetensorsHeader header;
  header.data_offset = 8 + header_len;
  const uint64_t data_size = size - header.data_offset;
  header.tensors.reserve(root.size());
  for (const auto& [name, info] : root.items()) {
    if (name == "__metadata__") {
      header.metadata = parse_metadata(label, info);
      continue;
    }
    header.tensors.push_back(parse_entry(label, name, info, data_size));
  }
  check_no_overlap(label, header.tensors);
  return header;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(path) {
  header_ = parse_safetensors_header(file_.data(), file_.size(), path.string());
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
}

const SafetensorsEntry* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

TensorView SafetensorsFile::view(const SafetensorsEntry& entry) const {
  LOWBIT_CHECK(header_.data_offset + entry.end <= file_.size(), "tensor '{}' outside {}",
               entry.name, path().string());
  TensorView v;
  v.name = entry.name;
  v.dtype = entry.dtype;
  v.shape = entry.shape;
  v.data = file_.data() + header_.data_offset + entry.begin;
  return v;
}

}  // namespace lowbit
