#include "io/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace lowbit {

namespace {

// Rank of a dtype in the reference implementation's order (its Dtype enum order, which
// sorts by alignment); higher is stored first.
int dtype_rank(DType t) {
  switch (t) {
    case DType::BOOL: return 0;
    case DType::U8: return 1;
    case DType::I8: return 2;
    case DType::F8_E5M2: return 3;
    case DType::F8_E4M3: return 4;
    case DType::I16: return 5;
    case DType::F16: return 6;
    case DType::BF16: return 7;
    case DType::I32: return 8;
    case DType::F32: return 9;
    case DType::F64: return 10;
    case DType::I64: return 11;
  }
  return -1;
}

void pwrite_all(int fd, const void* data, size_t n, uint64_t offset, const std::filesystem::path& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, off_t(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("{}: write failed at offset {}: {}", path.string(), offset, std::strerror(errno));
    }
    p += w;
    n -= size_t(w);
    offset += uint64_t(w);
  }
}

}  // namespace

struct SafetensorsWriter::Lock {
  std::mutex mu;
};

size_t TensorDecl::nbytes() const {
  size_t n = dtype_size(dtype);
  for (int64_t d : shape) n *= size_t(d);
  return n;
}

void sort_like_safetensors(std::vector<TensorDecl>& tensors) {
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorDecl& a, const TensorDecl& b) {
    const int ra = dtype_rank(a.dtype), rb = dtype_rank(b.dtype);
    return ra != rb ? ra > rb : a.name < b.name;
  });
}

SafetensorsWriter::SafetensorsWriter(const std::filesystem::path& path, std::vector<TensorDecl> tensors,
                                     const std::map<std::string, std::string>& metadata)
    : path_(path), lock_(std::make_unique<Lock>()) {
  sort_like_safetensors(tensors);
  // ordered_json keeps "__metadata__" first and tensors in data order, as the reference does.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<std::pair<std::string, uint64_t>> order;
  for (const TensorDecl& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__") fail("{}: invalid tensor name '{}'", path.string(), t.name);
    for (int64_t d : t.shape)
      if (d < 0) fail("{}: tensor '{}' has a negative dimension", path.string(), t.name);
    if (slots_.count(t.name)) fail("{}: tensor '{}' declared twice", path.string(), t.name);
    const uint64_t size = t.nbytes();
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape}, {"data_offsets", {offset, offset + size}}};
    slots_[t.name] = Slot{offset, size, false};
    offset += size;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  const uint64_t data_start = 8 + h.size();
  for (auto& [name, slot] : slots_) slot.offset += data_start;

  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("{}: cannot create: {}", path.string(), std::strerror(errno));
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t((uint64_t(h.size()) >> (8 * i)) & 0xff);
  pwrite_all(fd_, len, 8, 0, path_);
  pwrite_all(fd_, h.data(), h.size(), 8, path_);
  // The full length up front, so a tensor written out of order never leaves a short file.
  if (::ftruncate(fd_, off_t(data_start + offset)) != 0)
    fail("{}: cannot size the file to {} bytes: {}", path.string(), data_start + offset, std::strerror(errno));
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void SafetensorsWriter::write(const std::string& name, const void* data, size_t nbytes) {
  Slot* slot;
  {
    std::lock_guard<std::mutex> g(lock_->mu);
    auto it = slots_.find(name);
    if (it == slots_.end()) fail("{}: tensor '{}' was not declared", path_.string(), name);
    if (it->second.size != nbytes)
      fail("{}: tensor '{}' has {} bytes, declared {}", path_.string(), name, nbytes, it->second.size);
    if (it->second.written) fail("{}: tensor '{}' written twice", path_.string(), name);
    if (fd_ < 0) fail("{}: write after finish()", path_.string());
    it->second.written = true;
    slot = &it->second;
  }
  pwrite_all(fd_, data, nbytes, slot->offset, path_);
}

void SafetensorsWriter::finish() {
  std::vector<std::string> missing;
  for (const auto& [name, slot] : slots_)
    if (!slot.written) missing.push_back(name);
  if (!missing.empty())
    fail("{}: {} declared tensors were never written, e.g. '{}'", path_.string(), missing.size(), missing[0]);
  if (::fsync(fd_) != 0 && errno != EINVAL) fail("{}: fsync failed: {}", path_.string(), std::strerror(errno));
  if (::close(fd_) != 0) fail("{}: close failed: {}", path_.string(), std::strerror(errno));
  fd_ = -1;
}

}  // namespace lowbit
