// Safetensors reader: the file is mmap'd once and tensors are zero-copy views into it.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON, then the data section.
// The header is untrusted input and is validated completely before any view is handed out,
// so a view never points outside the mapping.
//
// Alignment: the format does not align tensor data (offsets are relative to a data section
// that starts at 8 + N, for any N), so views may be unaligned for their dtype. Kernels and
// repack code must read through memcpy or unaligned SIMD loads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/mapped_file.h"
#include "core/tensor.h"

namespace lowbit {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets within the data section
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> tensors;  // in data order (by begin offset)
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // file offset of the data section: 8 + header length
};

// Headers larger than this are rejected before parsing (the reference implementation uses
// the same limit).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// Validates the untrusted header fully; throws Error naming file_label and the tensor.
// `bytes` is the whole file (header and data), `size` its length.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size,
                                           std::string_view file_label);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);

  const SafetensorsHeader& header() const { return header_; }
  const std::filesystem::path& path() const { return file_.path(); }

  // nullptr when the file has no tensor of that name.
  const SafetensorsEntry* find(std::string_view name) const;
  // A view into the mapping; valid while this object lives. May be unaligned.
  TensorView view(const SafetensorsEntry& entry) const;

 private:
  MappedFile file_;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> header_.tensors index
};

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points above
// U+10FFFF).
bool is_valid_utf8(std::string_view s);

}  // namespace lowbit
