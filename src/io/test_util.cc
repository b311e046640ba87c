#include "io/test_util.h"

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/dtype.h"

namespace lowbit::testing {

namespace fs = std::filesystem;

std::string raw_safetensors(std::string_view header, std::string_view data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);
  out += header;
  out += data;
  return out;
}

std::string make_safetensors(const std::vector<TensorSpec>& tensors,
                             const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string data;
  for (const auto& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  return raw_safetensors(header.dump(), data);
}

std::string ramp_bytes(size_t n, uint8_t start) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = char(uint8_t(start + i));
  return out;
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  for (;;) {
    path_ = fs::temp_directory_path() /
            ("lowbit_io_test_" + std::to_string(rd()) + "_" + std::to_string(counter++));
    if (fs::create_directory(path_)) break;
  }
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

fs::path TempDir::write(const std::string& name, std::string_view content) const {
  fs::path p = path_ / name;
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out.write(content.data(), std::streamsize(content.size()));
  return p;
}

}  // namespace lowbit::testing
