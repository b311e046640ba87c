// Helpers for io tests: build safetensors bytes in memory and write them to a temp folder.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace lowbit::testing {

struct TensorSpec {
  std::string name;
  std::string dtype;  // safetensors spelling
  std::vector<int64_t> shape;
  std::string bytes;  // raw little-endian data, exactly shape x dtype size
};

// A well-formed safetensors file: tensors packed in order after the header.
std::string make_safetensors(const std::vector<TensorSpec>& tensors,
                             const std::map<std::string, std::string>& metadata = {});
// 8-byte length + `header` verbatim + `data`: for malformed headers.
std::string raw_safetensors(std::string_view header, std::string_view data = {});
// `n` bytes 0, 1, 2, ... (mod 256), so every tensor's data is distinguishable.
std::string ramp_bytes(size_t n, uint8_t start = 0);

// A fresh folder under the system temp dir, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, std::string_view content) const;

 private:
  std::filesystem::path path_;
};

// Runs `fn`, expecting a lowbit::Error whose message contains every one of `parts`.
template <class Fn>
void expect_error(Fn&& fn, std::initializer_list<std::string_view> parts) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string message = e.what();
    for (std::string_view part : parts)
      EXPECT_NE(message.find(part), std::string::npos)
          << "error message lacks \"" << part << "\": " << message;
    return;
  }
  ADD_FAILURE() << "expected a lowbit::Error";
}

}  // namespace lowbit::testing
